"""systemd integration, written against the documented protocols (no libsystemd).

Rules:
- Notifications (sd_notify(3)) are one datagram of `KEY=value` lines to the socket in
  `$NOTIFY_SOCKET`: a path, or an abstract name written with a leading `@`. Without the
  variable every notification is a no-op. A notification that cannot be sent is logged
  once and dropped: systemd's bookkeeping never stops deliveries.
- A reload is announced with `RELOADING=1` and `MONOTONIC_USEC=` (CLOCK_MONOTONIC, which
  systemd 253+ requires with it) and ends with `READY=1`. (The unit stays Type=notify:
  its ExecReload, `hookd config reload`, is what makes `systemctl reload` wait, on every
  systemd version.)
- The watchdog (sd_watchdog_enabled(3)) is on when `$WATCHDOG_USEC` is set and
  `$WATCHDOG_PID` is unset or names this process. Socket activation (sd_listen_fds(3))
  takes `$LISTEN_FDS` sockets from fd 3 on when `$LISTEN_PID` names this process.
- "This process" also covers the single-file binary's bootloader: there systemd starts
  the bootloader, which runs hookd as its child, so the variables name our parent.
- The activation variables are removed once read, so no child process inherits them.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections.abc import MutableMapping

log = logging.getLogger("hookd.systemd")

FIRST_FD = 3  # SD_LISTEN_FDS_START
_ACTIVATION_VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def _ours(pid_text: str | None) -> bool:
    """True when a `*_PID` variable is unset or names this process (or its bootloader)."""
    if pid_text is None:
        return True
    if not pid_text.isdigit():
        return False
    pid = int(pid_text)
    frozen = getattr(sys, "frozen", False)
    return pid == os.getpid() or (frozen and pid == os.getppid())


class Notifier:
    """Sends sd_notify messages; does nothing when systemd did not ask for them."""

    def __init__(self, address: str | None) -> None:
        self._address: str | bytes | None = None
        self._socket: socket.socket | None = None
        self._failed = False
        if address and (address.startswith("/") or address.startswith("@")):
            self._address = b"\0" + address[1:].encode() if address[0] == "@" else address
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.setblocking(False)

    @classmethod
    def from_environment(cls, environ: MutableMapping[str, str] = os.environ) -> Notifier:
        """The notifier `$NOTIFY_SOCKET` asks for."""
        return cls(environ.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        """True when notifications go somewhere."""
        return self._socket is not None

    def notify(self, **fields: str) -> None:
        """Send `KEY=value` fields in one datagram, e.g. `notify(READY="1")`."""
        if self._socket is None or self._address is None:
            return
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            self._socket.sendto(message, self._address)
        except OSError as exc:
            if not self._failed:  # once: a broken notify socket would flood the log
                log.warning("action=systemd.notify_failed error=%r", exc.strerror)
                self._failed = True

    def reloading(self, status: str) -> None:
        """Tell systemd a reload began; `READY=1` tells it the reload ended."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.notify(RELOADING="1", MONOTONIC_USEC=str(usec), STATUS=status)

    def close(self) -> None:
        """Close the notification socket."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def watchdog_interval(environ: MutableMapping[str, str] = os.environ) -> float | None:
    """The watchdog timeout in seconds systemd expects pings within, or None when off."""
    usec = environ.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0 or not _ours(environ.get("WATCHDOG_PID")):
        return None
    return int(usec) / 1_000_000


def listen_sockets(environ: MutableMapping[str, str] = os.environ) -> list[socket.socket]:
    """The sockets systemd passed (socket activation), in order; [] when none.

    Each is a listening stream socket, marked close-on-exec; the variables are removed.
    """
    count, pid = environ.get("LISTEN_FDS", ""), environ.get("LISTEN_PID")
    for name in _ACTIVATION_VARIABLES:
        environ.pop(name, None)
    if not count.isdigit() or int(count) == 0 or pid is None or not _ours(pid):
        return []
    sockets = []
    for fd in range(FIRST_FD, FIRST_FD + int(count)):
        try:
            os.set_inheritable(fd, False)
            sock = socket.socket(fileno=fd)
            listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        except OSError as exc:
            raise ValueError(f"fd {fd} passed by systemd is not a socket: {exc.strerror}") from None
        if sock.type != socket.SOCK_STREAM or not listening:
            raise ValueError(f"fd {fd} passed by systemd is not a listening stream socket")
        sockets.append(sock)
    return sockets
