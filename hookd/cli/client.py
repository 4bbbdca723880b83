"""The command line's side of the API: where the daemon is, requests, and failures as
exit statuses.

Rules:
- Where the daemon is: `--url` (TCP, with `--token` or HOOKD_TOKEN sent as a Bearer
  token), else the Unix socket of `--socket`, else HOOKD_SOCKET, else the `server.socket`
  of the config file in `--config` or HOOKD_CONFIG, else /run/hookd/hookd.sock. The
  target remembers where its address came from, for the hint when nothing answers.
- Every failure is a `CliError` carrying its exit status:

      CliError
        UsageError   2  the command line is wrong (argparse's own errors exit 2 too)
        Refused      1  the daemon answered with an error: its message, on one line
        Unreachable  3  no answer: the address tried, and what to check

- An answer's body is kept as received, so `--json` prints the API's JSON unchanged.
  httpx errors are translated here and nowhere else.
"""

from __future__ import annotations

import errno
import grp
import json
import os
import pwd
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from hookd.runtime import config

DEFAULT_SOCKET = "/run/hookd/hookd.sock"
TIMEOUT = 10.0


class CliError(Exception):
    """A command that cannot be done; `exit_status` says how, `hint` what to do."""

    exit_status = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(CliError):
    """The command line asks for something impossible."""

    exit_status = 2


class Refused(CliError):
    """The daemon answered with an error status."""

    exit_status = 1


class Unreachable(CliError):
    """No answer from the daemon."""

    exit_status = 3


@dataclass(frozen=True)
class Target:
    """Where the daemon is: a Unix socket path, or a base URL with an optional token."""

    socket: str = ""
    url: str = ""
    token: str = ""
    source: str = ""  # where the address came from: "--socket", "HOOKD_SOCKET", ...

    def describe(self) -> str:
        return self.url or self.socket


def resolve_target(
    environ: Mapping[str, str],
    *,
    socket: str | None = None,
    url: str | None = None,
    token: str | None = None,
    config_path: str | None = None,
) -> Target:
    """The daemon's address from the options given and the environment, in that order."""
    if url:
        return Target(url=url.rstrip("/"), token=token or environ.get("HOOKD_TOKEN", ""))
    if socket:
        return Target(socket=socket, source="--socket")
    if environ.get("HOOKD_SOCKET"):
        return Target(socket=environ["HOOKD_SOCKET"], source="HOOKD_SOCKET")
    path = config_path or environ.get("HOOKD_CONFIG")
    if path:
        try:
            settings = config.load(path)
        except config.ConfigError as exc:
            raise UsageError(f"config error: {exc}") from None
        return Target(socket=settings.server.socket, source=f"server.socket in {path}")
    return Target(socket=DEFAULT_SOCKET, source="the default path")


@dataclass(frozen=True)
class Answer:
    """A successful answer: its status and body exactly as received."""

    status: int
    text: str

    def data(self) -> Any:
        """The body decoded from JSON (None when empty)."""
        return json.loads(self.text) if self.text else None


class Client:
    """Requests to one daemon; close it with `close()`."""

    def __init__(self, target: Target, timeout: float = TIMEOUT) -> None:
        self.target = target
        self._timeout = timeout
        headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
        if target.url:
            self._http = httpx.Client(
                base_url=target.url, headers=headers, timeout=timeout, trust_env=False
            )
        else:
            # No TLS on a Unix socket: verify=False spares loading the CA bundle (50 ms).
            transport = httpx.HTTPTransport(uds=target.socket, verify=False)
            self._http = httpx.Client(transport=transport, base_url="http://hookd", timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content: bytes | None = None,
        content_type: str = "application/json",
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """One request; `body` is sent as JSON, `content` as it is."""
        if body is not None:
            content = json.dumps(body, ensure_ascii=False).encode()
        sent = dict(headers or {})
        if content is not None:
            sent["Content-Type"] = content_type
        try:
            response = self._http.request(
                method, path, content=content, params=params, headers=sent
            )
        except httpx.TimeoutException:
            raise Unreachable(
                f"hookd at {self.target.describe()} did not answer within {self._timeout:g}s",
                "it may be overloaded or stuck: check its log (journalctl -u hookd)",
            ) from None
        except httpx.TransportError as exc:
            raise unreachable(self.target, exc) from None
        if response.status_code >= 400:
            raise _refused(response, self.target)
        return Answer(response.status_code, response.text)

    def get(self, path: str, params: Mapping[str, str | int] | None = None) -> Answer:
        return self.call("GET", path, params=params)

    def post(self, path: str, body: Any = None) -> Answer:
        return self.call("POST", path, body=body)


def _refused(response: httpx.Response, target: Target) -> Refused:
    try:
        error = response.json()["error"]
        message = str(error["message"])
    except (ValueError, KeyError, TypeError):
        message = f"HTTP {response.status_code}: {response.text[:200]}"
    hint = ""
    if response.status_code == 401 and target.url:
        hint = "give the daemon's server.api_token with --token or HOOKD_TOKEN"
    return Refused(" ".join(message.split()), hint)


def unreachable(target: Target, exc: Exception) -> Unreachable:
    """What to tell a user when the connection to `target` failed with `exc`."""
    if target.url:
        return Unreachable(
            f"cannot reach hookd at {target.url} ({exc})",
            "is hookd running, and is its server.listen set to that address?",
        )
    where = f"{target.socket} (from {target.source})"
    code = _errno(exc)
    if code in (errno.EACCES, errno.EPERM):
        return Unreachable(f"permission denied on {where}", _permission_hint(target))
    running = "is the hookd service running (systemctl status hookd)?"
    if code == errno.ENOENT:
        problem, check = "no socket at", f"{running} Does its config name this socket?"
    elif code == errno.ECONNREFUSED:
        problem, check = "nothing listening on", f"{running} A stopped hookd left the file."
    else:
        problem, check = f"cannot connect ({exc}) to", running
    return Unreachable(f"cannot reach hookd: {problem} {where}", check)


def _errno(exc: BaseException) -> int | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno is not None:
            return seen.errno
        seen = seen.__cause__ or seen.__context__
    return None


def _permission_hint(target: Target) -> str:
    try:
        info = os.stat(target.socket)
    except OSError:
        return "you cannot reach the socket's directory: check its permissions"
    owner = _name(lambda: pwd.getpwuid(info.st_uid).pw_name, info.st_uid)
    group = _name(lambda: grp.getgrgid(info.st_gid).gr_name, info.st_gid)
    mode = stat.filemode(info.st_mode)
    return (
        f"the socket is {mode} {owner}:{group}: add your user to the group {group} "
        "(and log in again), or run the command as a member of it"
    )


def _name(lookup: Callable[[], str], number: int) -> str:
    try:
        return str(lookup())
    except KeyError:
        return str(number)
