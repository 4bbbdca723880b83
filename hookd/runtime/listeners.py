"""The API's listening sockets: the Unix socket and the optional loopback TCP port.

Rules:
- A leftover Unix socket file is replaced only when it is a socket that nobody answers
  on; a live one means another hookd is running, and any other kind of file is never
  touched. The new socket file is created owner-only (0600, whatever the umask) and gets
  `server.socket_mode` before it accepts anything.
- Sockets passed by systemd (socket activation) are adopted as they are: a Unix one
  serves as the API socket, a TCP one as the TCP listener; their files and modes are
  systemd's.
- Failures are `ListenError` with a message for the operator.
"""

from __future__ import annotations

import errno
import os
import socket
import stat

import trio


class ListenError(Exception):
    """A listening socket cannot be set up."""


async def open_unix_listener(path: str, mode: int) -> trio.SocketListener:
    """Bind and listen on the Unix socket at `path`."""
    await _clear_stale_socket(path)
    await trio.Path(path).parent.mkdir(parents=True, exist_ok=True)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        saved = os.umask(0o177)  # no moment with the socket open to others (lgpd)
        try:
            await sock.bind(path)
        finally:
            os.umask(saved)
        os.chmod(path, mode)
        sock.listen(socket.SOMAXCONN)
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {path}: {exc.strerror}") from None
    return trio.SocketListener(sock)


async def _clear_stale_socket(path: str) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise ListenError(f"{path} exists and is not a socket; refusing to replace it")
    probe = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await probe.connect(path)
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise ListenError(f"cannot check the old socket {path}: {exc.strerror}") from None
    else:
        raise ListenError(f"another process is listening on {path} (is hookd already running?)")
    finally:
        probe.close()
    os.unlink(path)


async def open_tcp_listeners(address: str) -> list[trio.SocketListener]:
    """Listen on `host:port`."""
    host, _, port = address.rpartition(":")
    try:
        return await trio.open_tcp_listeners(int(port), host=host.strip("[]"))
    except OSError as exc:
        raise ListenError(f"cannot listen on {address}: {exc.strerror}") from None


def adopt(sockets: list[socket.socket]) -> list[tuple[trio.SocketListener, str]]:
    """Listeners for sockets passed by systemd, each with its origin (socket or tcp)."""
    listeners = []
    for sock in sockets:
        if sock.family == socket.AF_UNIX:
            origin = "socket"
        elif sock.family in (socket.AF_INET, socket.AF_INET6):
            origin = "tcp"
        else:
            raise ListenError(f"a socket passed by systemd has an unusable family {sock.family!r}")
        sock.setblocking(False)
        listeners.append((trio.SocketListener(trio.socket.from_stdlib_socket(sock)), origin))
    return listeners
