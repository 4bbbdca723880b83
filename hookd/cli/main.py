"""The `hookd` command: `serve` runs the daemon; the other subcommands talk to it, or
help test receivers (`listen`, `verify`) and configs (`config check`).

Rules:
- Exit status: 0 done; 1 failed (the daemon refused, or hookd could not start), with one
  line saying why; 2 the command line or the configuration is wrong; 3 the daemon is
  not reachable, with a hint naming the socket tried. `verify` exits 1 on a mismatch.
- Results go to stdout, everything meant for the person (errors, hints, notes) to
  stderr. Colour only on a terminal, never with NO_COLOR. When whoever reads stdout
  goes away (`hookd event-types | head`), the command stops quietly with status 0.
- The clock is read here, once, and handed to the command.
- The daemon (and trio) are imported only by `serve` (and `version --verbose`, which
  names trio's version): a client command starts in half the time without them.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import time

from hookd import __version__
from hookd.cli.client import CliError, UsageError
from hookd.cli.commands import (
    Context,
    audit,
    common_options,
    config_check,
    db,
    deliveries,
    endpoints,
    event_types,
    events,
    listen,
    stats,
    status,
    subject,
    verify,
    version,
)
from hookd.cli.output import Screen, colour_wanted
from hookd.runtime import config, logs


def command_line() -> argparse.ArgumentParser:
    """The whole command line: every subcommand and its options (also the man page's source)."""
    parser = argparse.ArgumentParser(prog="hookd", description="Outbound webhook daemon.")
    parser.add_argument("--version", action="version", version=f"hookd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the daemon")
    serve.add_argument(
        "--config", help="config file (default: $HOOKD_CONFIG, else /etc/hookd/hookd.toml)"
    )
    serve.set_defaults(handler=_serve)
    common = common_options()
    for module in (status, stats, endpoints, events, event_types, deliveries, audit, subject):
        module.register(commands, common)
    config_check.register(commands, common)  # `config reload` talks to the daemon
    for offline in (listen, verify, db, version):
        offline.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the hookd command line; returns the exit status."""
    try:
        return _main(argv)
    except BrokenPipeError:  # stdout's reader is gone: nothing more can be shown
        _silence_stdout()
        return 0


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so flushing it at exit raises nothing more."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # not a file (a test's buffer)
        pass


def _main(argv: list[str] | None) -> int:
    try:
        args = command_line().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else 2
    screen = Screen(sys.stdout, sys.stderr, colour_wanted(sys.stdout, os.environ), time.time())
    context = Context(args, screen)
    try:
        exit_status: int = args.handler(context)
    except CliError as exc:
        screen.note(f"hookd: {exc.message}")
        if exc.hint:
            screen.note(f"hint: {exc.hint}")
        return exc.exit_status
    finally:
        context.close()
    return exit_status


def _serve(context: Context) -> int:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the daemon takes it: a reload
    import trio

    from hookd.db.errors import StorageError
    from hookd.runtime.daemon import Daemon
    from hookd.runtime.listeners import ListenError

    try:
        settings = config.load(context.args.config)
    except config.ConfigError as exc:
        raise UsageError(f"config error: {exc}") from None
    logs.setup(settings.log.level)
    _tune_gc()
    try:
        trio.run(Daemon(settings, config_path=context.args.config).run)
    except (StorageError, ListenError) as exc:
        raise CliError(str(exc)) from None
    return 0


def _tune_gc() -> None:
    """Keep the cyclic collector's pauses off the delivery schedule.

    Full collections walked every object imported at start-up and paused the loop for
    7-13 ms under load (measured with gc.callbacks in the retry-timing bench). Freezing
    moves those objects out of the collector's sight; the larger first threshold makes
    collections rarer, since hookd's own objects are mostly freed by reference counting.
    """
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)
