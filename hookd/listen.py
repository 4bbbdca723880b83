"""`hookd listen`: a local receiver that prints each delivery and checks its signatures.

Rules:
- It serves with hookd's own HTTP/1.1 server (`hookd.http`) on `host:port`, and takes
  POSTs on `path`. Other paths are answered 404 and other methods 405, each noted on
  stderr: they are not deliveries.
- Each delivery prints one line on stdout: local time, event type, event id, attempt
  (with the time since the previous attempt of that event), body size, the spec
  signature (`X-Webhook-Signature`) and the Standard Webhooks one (`webhook-signature`)
  as OK or BAD, "-" when not sent, "?" when no secret was given, and the status answered.
  The spec's is OK when the secret made `X-Webhook-Signature`, or during a rotation
  `X-Webhook-Signature-Previous` or `-Next`, as the README's receivers accept it.
  With `json` the same goes out as one JSON object a line, with the body.
- What it answers: `status` to every delivery; with `fail_rate`, that share of them,
  drawn from the `random.Random` it is given, gets `status` (500 unless given) and the
  rest 200. `delay` is waited before answering. Failing on purpose lets a user watch
  hookd's retry schedule work.
- SIGINT (Ctrl-C) and SIGTERM stop it; `run` then returns 0. So does stdout's reader
  going away (`hookd listen | head`): `run` then raises the BrokenPipeError, for the
  command line to end quietly.
"""

from __future__ import annotations

import json
import random
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import trio

from hookd import __version__
from hookd.client import CliError
from hookd.core import signing
from hookd.http import Limits, Request, Response, Server, json_response
from hookd.output import Cell, Screen, Styled, code_cell, span

LIMITS = Limits(max_body_bytes=16 * 1024 * 1024)
REMEMBERED = 10_000  # events whose last attempt time is kept, for the "+1m 0s" column


@dataclass(frozen=True)
class Options:
    host: str = "127.0.0.1"
    port: int = 3000
    path: str = "/webhook"
    secret: str | None = None
    status: int | None = None
    fail_rate: float | None = None
    delay: float = 0.0
    json: bool = False


def check_signatures(
    secret: str | None, headers: Mapping[str, str], body: bytes
) -> tuple[str, str]:
    """(spec, standard) verdicts: "OK", "BAD", "-" when not sent, "?" without a secret."""
    spec_header = headers.get("x-webhook-signature")
    standard_header = headers.get("webhook-signature")
    if secret is None:
        return ("?" if spec_header else "-", "?" if standard_header else "-")
    spec = "-"
    if spec_header is not None:
        names = (signing.SIGNATURE_HEADER, signing.PREVIOUS_HEADER, signing.NEXT_HEADER)
        given = [headers.get(name.lower()) for name in names]
        good = any(signing.verify_spec(secret, body, s) for s in given if s is not None)
        spec = "OK" if good else "BAD"
    standard = "-"
    if standard_header is not None:
        event_id = headers.get("webhook-id", "")
        stamp = headers.get("webhook-timestamp", "")
        good = signing.verify_standard(secret, event_id, stamp, body, standard_header)
        standard = "OK" if good else "BAD"
    return spec, standard


class Receiver:
    """Answers deliveries as `options` say and prints each on `screen`."""

    def __init__(self, options: Options, screen: Screen, rng: random.Random) -> None:
        self.options = options
        self.screen = screen
        self._rng = rng
        self._last_seen: dict[str, float] = {}
        self.stdout_gone = trio.Event()

    async def open_listeners(self) -> list[trio.SocketListener]:
        """Bind `host:port`; a `CliError` when that cannot be done."""
        options = self.options
        try:
            return await trio.open_tcp_listeners(options.port, host=options.host)
        except OSError as exc:
            where = f"{options.host}:{options.port}"
            raise CliError(f"cannot listen on {where}: {exc.strerror}") from None

    async def serve(
        self,
        listeners: list[trio.SocketListener],
        *,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve on `listeners` until cancelled; `task_status.started(port)` at once."""
        options = self.options
        port: int = listeners[0].socket.getsockname()[1]
        server = Server(self.handle, LIMITS, f"hookd-listen/{__version__}")
        try:
            async with trio.open_nursery() as nursery:
                for listener in listeners:
                    nursery.start_soon(server.serve, listener, "tcp", nursery)
                host = f"[{options.host}]" if ":" in options.host else options.host
                self.screen.note(
                    f"listening on http://{host}:{port}{options.path}; "
                    f"{self._describe()} (Ctrl-C to stop)"
                )
                task_status.started(port)
        finally:
            for listener in listeners:
                listener.socket.close()

    def _describe(self) -> str:
        options = self.options
        failing = options.status or 500
        if options.fail_rate is not None:
            answer = f"answering {failing} to {options.fail_rate:.0%} of deliveries, else 200"
        else:
            answer = f"answering {options.status or 200}"
        if options.delay:
            answer += f" after {options.delay:g}s"
        checks = "checking signatures" if options.secret else "no --secret: signatures unchecked"
        return f"{answer}; {checks}"

    def answer_status(self) -> int:
        """The status to answer the next delivery with."""
        options = self.options
        if options.fail_rate is None:
            return options.status or 200
        return (options.status or 500) if self._rng.random() < options.fail_rate else 200

    async def handle(self, request: Request) -> Response:
        """Answer one request; print it when it is a delivery."""
        if request.path != self.options.path:
            self.screen.note(f"{request.method} {request.path}: 404, not {self.options.path}")
            return _error(404, f"hookd listen takes deliveries on {self.options.path}")
        if request.method != "POST":
            self.screen.note(f"{request.method} {request.path}: 405, deliveries are POSTs")
            return _error(405, "deliveries are POST requests")
        status = self.answer_status()
        try:
            self._report(request, status)
        except BrokenPipeError:
            self.stdout_gone.set()
        if self.options.delay:
            await trio.sleep(self.options.delay)
        if 200 <= status < 300:
            return json_response(status, {"success": True})
        return _error(status, f"hookd listen answers {status} on purpose")

    def _report(self, request: Request, status: int) -> None:
        headers, body, now = request.headers, request.body, time.time()
        spec, standard = check_signatures(self.options.secret, headers, body)
        event_id = headers.get("x-webhook-id", "-")
        gap = self._gap(event_id, now)
        attempt = headers.get("x-webhook-attempt", "-")
        if self.options.json:
            line = {
                "time": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
                "event": headers.get("x-webhook-event"),
                "id": headers.get("x-webhook-id"),
                "attempt": int(attempt) if attempt.isdigit() else None,
                "since_last_attempt_s": round(gap, 3) if gap is not None else None,
                "bytes": len(body),
                "signature": {"spec": spec, "standard": standard},
                "status": status,
                "body": _body(body),
            }
            self.screen.raw(json.dumps(line, ensure_ascii=False))
            return
        since = f" (+{span(gap)})" if gap is not None else ""
        self.screen.line(
            datetime.fromtimestamp(now).strftime("%H:%M:%S  "),
            Styled(headers.get("x-webhook-event", "-"), "bold"),
            f"  {event_id}  attempt {attempt}{since}  {len(body)} B  spec ",
            _verdict(spec),
            "  std ",
            _verdict(standard),
            "  -> ",
            code_cell(status),
            sep="",
        )

    def _gap(self, event_id: str, now: float) -> float | None:
        """Seconds since this event's previous attempt arrived, if one did."""
        previous = self._last_seen.pop(event_id, None)
        self._last_seen[event_id] = now
        if len(self._last_seen) > REMEMBERED:
            del self._last_seen[next(iter(self._last_seen))]
        return None if previous is None else now - previous


def _verdict(verdict: str) -> Cell:
    return {"OK": Styled("OK", "green"), "BAD": Styled("BAD", "red")}.get(verdict, verdict)


def _body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")


def _error(status: int, message: str) -> Response:
    return json_response(status, {"error": message})


def run(options: Options, screen: Screen, rng: random.Random) -> int:
    """Serve until Ctrl-C or SIGTERM; the exit status."""

    receiver = Receiver(options, screen, rng)

    async def main() -> None:
        listeners = await receiver.open_listeners()
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(receiver.serve, listeners)
                nursery.start_soon(_cancel_when, receiver.stdout_gone, nursery.cancel_scope)
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break

    trio.run(main)
    screen.note("stopped")
    if receiver.stdout_gone.is_set():
        raise BrokenPipeError("stdout was closed")
    return 0


async def _cancel_when(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()
