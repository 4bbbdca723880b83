"""Live updates of the console's deliveries: Server-Sent Events under /ui/live.

Rules (docs/ARCHITECTURE.md, "Layers"):
- A stream watches the deliveries a page shows (`ids`, at most MAX_WATCHED) and, on a
  list's first page, the new ones matching its filters (`after`: the newest id shown).
  Every PERIOD it reads them through the service and sends an `event: delivery` per
  delivery that changed (or appeared): JSON with its fields and the word for its
  status. With `attempts=1` (one delivery's page) the attempts come along.
- A comment line goes out every KEEPALIVE so a gone browser is noticed by a failed send.
- The stream is the server's (`api.server`): it holds a TCP connection slot, and a
  graceful stop cancels it at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec
import trio

from hookd.api.errors import ApiError
from hookd.api.server import Response, Send
from hookd.domain import views
from hookd.service import Service

PERIOD = 1.0  # seconds between two reads
KEEPALIVE = 15.0  # seconds between two comment lines
MAX_WATCHED = 200
NEW_PER_READ = 50

_json = msgspec.json.Encoder()


class Watch(msgspec.Struct, kw_only=True):
    """What one stream watches."""

    ids: list[int]
    after: int | None  # the newest id shown on a first page; None: no new rows wanted
    filters: Mapping[str, str | float]
    attempts: bool  # one delivery's page: its attempts too

    @classmethod
    def from_query(cls, query: dict[str, str], filters: Mapping[str, str | float]) -> Watch:
        """The watch a page asks for; a 400 naming the parameter when malformed."""
        parts = [p for p in query.get("ids", "").split(",") if p]
        if len(parts) > MAX_WATCHED or not all(_is_id(p) for p in parts):
            raise ApiError(
                400, "bad_request", f"ids: up to {MAX_WATCHED} delivery ids, comma-separated"
            )
        after = query.get("after", "")
        if after and not _is_id(after):
            raise ApiError(400, "bad_request", "after: a delivery id")
        return cls(
            ids=[int(p) for p in parts],
            after=int(after) if after else None,
            filters=filters,
            attempts=query.get("attempts") == "1",
        )


def response(
    service: Service, watch: Watch, word: Callable[[str], str], headers: list[tuple[str, str]]
) -> Response:
    """The streaming answer for `watch`."""

    async def stream(send: Send) -> None:
        await send(b"retry: 2000\n\n")
        seen: dict[int, tuple[Any, ...]] = {}
        ids = list(watch.ids)
        after = watch.after
        quiet = 0.0
        while True:
            found = await _read(service, ids, watch.attempts)
            if after is not None:
                page = await service.list_deliveries(NEW_PER_READ, None, watch.filters)
                fresh = [d for d in page.items if d.id > after]
                if fresh:
                    after = max(d.id for d in fresh)
                    ids = [*ids, *(d.id for d in fresh)][-MAX_WATCHED:]
                    found += fresh
            sent = False
            for delivery in found:
                state = _state(delivery)
                if seen.get(delivery.id) != state:  # the first read sends them all once
                    await send(_event(delivery, word))
                    seen[delivery.id] = state
                    sent = True
            quiet = 0.0 if sent else quiet + PERIOD
            if quiet >= KEEPALIVE:
                await send(b": keep-alive\n\n")
                quiet = 0.0
            await trio.sleep(PERIOD)

    return Response(
        status=200,
        content_type="text/event-stream; charset=utf-8",
        headers=[*headers, ("X-Accel-Buffering", "no")],
        stream=stream,
    )


async def _read(service: Service, ids: list[int], attempts: bool) -> list[views.Delivery]:
    if attempts:
        return [await service.get_delivery(i) for i in ids]
    return await service.deliveries_by_id(ids) if ids else []


def _state(delivery: views.Delivery) -> tuple[Any, ...]:
    log = delivery.attempt_log if isinstance(delivery.attempt_log, list) else []
    return (delivery.status, delivery.attempts, delivery.updated_at, len(log))


def _event(delivery: views.Delivery, word: Callable[[str], str]) -> bytes:
    fields = msgspec.to_builtins(delivery)
    fields["status_word"] = word(delivery.status)
    return b"event: delivery\ndata: " + _json.encode(fields) + b"\n\n"


def _is_id(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 18
