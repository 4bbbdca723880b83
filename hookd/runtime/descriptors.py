"""The process's file descriptor budget: how many connections the listeners may hold.

Rules:
- At start the soft RLIMIT_NOFILE is raised to the hard limit. Under systemd the unit's
  `LimitNOFILE=` sets both (its `SystemCallFilter=~@resources` refuses setrlimit, so
  there the unit's figure is the one that counts); elsewhere the raise is what helps.
- Descriptors are shared out: `reserve()` is kept for what hookd opens itself (the
  database, the journal, trio, and for each attempt in flight its connection, a
  resolver socket and an idle keep-alive connection); the listeners' connection limits
  (Unix socket and TCP) share the rest.
- Configured limits that do not fit are scaled down, in proportion, with a warning that
  names the figures: the configuration is not wrong, the environment (a container's
  hard limit, a unit without LimitNOFILE) is smaller, and serving fewer connections
  beats not serving. A limit too small for one connection of each kind refuses to start.
- A reload may raise `delivery.concurrency` only as far as its reserve fits beside the
  connection limits the listeners were started with (`concurrency_problem`).
"""

from __future__ import annotations

import logging
import resource

import msgspec

log = logging.getLogger("hookd.daemon")

FIXED_RESERVE = 64  # stdio, the database's files and connections, the journal, trio's own
PER_ATTEMPT = 3  # an attempt's connection, its resolver socket, an idle keep-alive one


class BudgetError(Exception):
    """The descriptor limit is too low to run at all."""


class Budget(msgspec.Struct, frozen=True, kw_only=True):
    nofile: int  # the soft limit in force
    reserve: int
    socket_connections: int
    tcp_connections: int


def raise_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit where allowed; the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError) as exc:  # a seccomp filter (~@resources): EPERM
            log.info("action=nofile.kept limit=%d hard=%d error=%r", soft, hard, str(exc))
            return soft
        return hard
    return soft


def reserve(concurrency: int) -> int:
    """Descriptors kept for hookd's own files and outgoing connections."""
    return FIXED_RESERVE + PER_ATTEMPT * concurrency


def concurrency_problem(nofile: int, connections: int, concurrency: int) -> str | None:
    """Why `concurrency` attempts do not fit in `nofile` descriptors beside `connections`
    served connections (a reload cannot shrink those), or None when they fit."""
    needed = reserve(concurrency) + connections
    if needed <= nofile:
        return None
    return (
        f"{concurrency} attempts in flight need {needed} descriptors with the "
        f"{connections} connections served, more than the limit ({nofile}); raise "
        "LimitNOFILE (or ulimit -n) and restart"
    )


def budget(nofile: int, socket_connections: int, tcp_connections: int, concurrency: int) -> Budget:
    """The connection limits that fit in `nofile` descriptors (tcp_connections 0: no TCP)."""
    kept = reserve(concurrency)
    room = nofile - kept
    wanted = socket_connections + tcp_connections
    if wanted <= room:
        return Budget(
            nofile=nofile,
            reserve=kept,
            socket_connections=socket_connections,
            tcp_connections=tcp_connections,
        )
    needed = kept + (2 if tcp_connections else 1)
    if room < needed - kept:
        raise BudgetError(
            f"the descriptor limit ({nofile}) is too low: hookd needs at least {needed} "
            f"({kept} for its database and {concurrency} attempts in flight); raise "
            "LimitNOFILE in the unit (or ulimit -n), or lower delivery.concurrency"
        )
    tcp = max(1, room * tcp_connections // wanted) if tcp_connections else 0
    fitted = Budget(nofile=nofile, reserve=kept, socket_connections=room - tcp, tcp_connections=tcp)
    log.warning(
        "action=connections.limited nofile=%d reserve=%d max_connections=%d "
        "max_tcp_connections=%d configured=%d,%d hint=%r",
        nofile,
        kept,
        fitted.socket_connections,
        fitted.tcp_connections,
        socket_connections,
        tcp_connections,
        "raise LimitNOFILE (or ulimit -n) to serve the configured connections",
    )
    return fitted
