"""`hookd db backup PATH` and `hookd db check`: the database file, for the operator.

Rules:
- The database is the one named by the config (`--config`, else HOOKD_CONFIG, else
  /etc/hookd/hookd.toml), read as `hookd serve` reads it; a bad config exits 2.
- Both work while the daemon runs (`hookd.dbtools`). `backup` exits 0 once the copy is
  written, checked and durable, 1 when it cannot be made (an existing PATH included);
  `check` exits 0 for a sound file, 1 listing what is damaged.
- Restore: stop hookd, put the backup in place of the database file (removing any
  `-wal` and `-shm` files beside it), start hookd.
"""

from __future__ import annotations

from typing import Any

from hookd.cli import dbtools
from hookd.cli.client import CliError, UsageError
from hookd.cli.commands import Context
from hookd.runtime import config


def register(commands: Any) -> None:
    """Add `db backup` and `db check`."""
    parser = commands.add_parser("db", help="back up or check the database")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    backup = actions.add_parser(
        "backup",
        help="write a consistent copy of the database, while hookd runs",
        description="Exit 0 once the copy is written and checked; never overwrites PATH.",
    )
    backup.add_argument("path", metavar="PATH", help="the new file to write")
    backup.set_defaults(handler=_backup)
    check = actions.add_parser(
        "check",
        help="check the database's integrity",
        description="Exit 0 when the database is sound, 1 listing the damage.",
    )
    check.set_defaults(handler=_check)
    for action in (backup, check):
        action.add_argument(
            "--config", help="config file (default: $HOOKD_CONFIG, else /etc/hookd/hookd.toml)"
        )


def _database(context: Context) -> str:
    path = context.args.config or context.environ.get("HOOKD_CONFIG") or config.DEFAULT_PATH
    try:
        return config.load(path).storage.path
    except config.ConfigError as exc:
        raise UsageError(f"config error: {exc}") from None


def _backup(context: Context) -> int:
    source = _database(context)
    try:
        size = dbtools.backup(source, context.args.path)
    except dbtools.DatabaseToolError as exc:
        raise CliError(str(exc)) from None
    context.screen.note(f"backup of {source} written to {context.args.path} ({size:,} bytes)")
    return 0


def _check(context: Context) -> int:
    path = _database(context)
    try:
        problems = dbtools.check(path)
    except dbtools.DatabaseToolError as exc:
        raise CliError(str(exc)) from None
    if not problems:
        context.screen.note(f"{path}: ok")
        return 0
    for problem in problems:
        context.screen.raw(f"{problem}\n")
    raise CliError(f"{path} is damaged ({len(problems)} problem(s) above)", hint=RESTORE_HINT)


RESTORE_HINT = (
    "restore the latest backup: stop hookd, copy it over the database file "
    "(removing its -wal and -shm files), start hookd"
)
