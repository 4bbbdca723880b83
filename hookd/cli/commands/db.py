"""`hookd db backup PATH`, `db check`, `db init-key PATH` and `db rotate-key`: the
database file and the key its endpoint secrets are sealed under, for the operator.

Rules:
- The database is the one named by the config (`--config`, else HOOKD_CONFIG, else
  /etc/hookd/hookd.toml), read as `hookd serve` reads it; a bad config exits 2.
- Both work while the daemon runs (`hookd.dbtools`). `backup` exits 0 once the copy is
  written, checked and durable, 1 when it cannot be made (an existing PATH included);
  `check` exits 0 for a sound file, 1 listing what is damaged.
- Restore: stop hookd, put the backup in place of the database file (removing any
  `-wal` and `-shm` files beside it), start hookd.
- `init-key` writes a new key file (0600), never over an existing one. `rotate-key`
  needs hookd stopped (it takes the database's lock): it puts a new key in front of the
  key file's, seals every endpoint secret under it, then drops the old keys from the
  file. At every step the file opens every secret stored, so a crash loses nothing (the
  next start, or a second run, finishes the job). Endpoint secrets themselves, and so
  the signatures receivers check, do not change.
"""

from __future__ import annotations

from typing import Any

from hookd.cli import dbtools
from hookd.cli.client import CliError, UsageError
from hookd.cli.commands import Context
from hookd.db.errors import StorageError
from hookd.db.sealing import key_id
from hookd.runtime import config, keys


def register(commands: Any) -> None:
    """Add `db backup`, `db check`, `db init-key` and `db rotate-key`."""
    parser = commands.add_parser(
        "db", help="back up or check the database; make or rotate its secrets' key"
    )
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
    init_key = actions.add_parser(
        "init-key",
        help="write a new key file for the endpoint secrets (storage.key_file)",
        description="Exit 0 once PATH holds a new key (mode 0600); never overwrites PATH.",
    )
    init_key.add_argument("path", metavar="PATH", help="the new key file")
    init_key.set_defaults(handler=_init_key)
    rotate = actions.add_parser(
        "rotate-key",
        help="seal every endpoint secret under a new key (hookd stopped)",
        description="A new key in front of the key file's, every endpoint secret sealed "
        "under it, the old keys dropped. The secrets themselves do not change.",
    )
    rotate.add_argument(
        "--key-file", help="the key file to rotate (default: the config's storage.key_file)"
    )
    rotate.set_defaults(handler=_rotate_key)
    for action in (backup, check, rotate):
        action.add_argument(
            "--config", help="config file (default: $HOOKD_CONFIG, else /etc/hookd/hookd.toml)"
        )


def _storage(context: Context) -> config.StorageConfig:
    path = context.args.config or context.environ.get("HOOKD_CONFIG") or config.DEFAULT_PATH
    try:
        return config.load(path).storage
    except config.ConfigError as exc:
        raise UsageError(f"config error: {exc}") from None


def _database(context: Context) -> str:
    return _storage(context).path


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


def _init_key(context: Context) -> int:
    key = keys.new_key()
    try:
        keys.create_ring(context.args.path, key)
    except keys.KeyFileError as exc:
        raise CliError(str(exc)) from None
    context.screen.note(
        f"key {key_id(key)} written to {context.args.path}; set storage.key_file to it "
        "and restart hookd: it seals every endpoint secret at its next start"
    )
    return 0


def _rotate_key(context: Context) -> int:
    import trio

    from hookd.db.sqlite import SqliteBackend

    storage = _storage(context)
    path = context.args.key_file or storage.key_file
    if not path:
        raise UsageError("no key file to rotate: give --key-file, or set storage.key_file")
    try:
        old = keys.read_ring(path)
        new = keys.new_key()
        keys.replace_ring(path, [new, *old])  # from here on the file opens old and new
    except keys.KeyFileError as exc:
        raise CliError(str(exc)) from None

    async def reseal() -> None:
        store = await SqliteBackend.open(storage.path, storage.durability, [new, *old])
        await store.aclose()

    try:
        trio.run(reseal)
    except StorageError as exc:
        keys.replace_ring(path, old)  # nothing was sealed under the new key
        raise CliError(str(exc)) from None
    keys.replace_ring(path, [new])
    dropped = ", ".join(key_id(key) for key in old)
    context.screen.note(
        f"endpoint secrets of {storage.path} sealed under key {key_id(new)}; "
        f"{path} no longer holds {dropped}"
    )
    return 0
