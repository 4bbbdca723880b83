"""The client subcommands of `hookd`, one module per noun, and what they share.

Rules:
- Each module's `register(commands, common)` adds its subcommands; each subcommand sets
  `handler`, a function of a `Context` that returns the exit status or raises a
  `CliError`. `common` carries the options every client command takes: where the daemon
  is, and `--json`.
- With `--json` a command prints the API's JSON unchanged; otherwise a table or a list
  of fields. Lists are paged for the user: `--limit N` shows at most N, `--all` follows
  the API's cursor to the end.
- The clock is read once, in `cli.main`; it is `context.screen.now` here.
- A secret need never be on the command line (where `ps` and shell history show it):
  `--secret -` reads it from standard input, `--secret-file PATH` from a file, and where
  a missing secret has a default (`endpoints add` generates one, `listen` checks none)
  HOOKD_SECRET is read first. Surrounding whitespace (a final newline) is dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hookd.cli.client import TIMEOUT, Answer, Client, UsageError, resolve_target
from hookd.cli.output import Screen
from hookd.domain.durations import parse_duration

MAX_PAGE = 1000  # the API's largest page

Handler = Callable[["Context"], int]


@dataclass
class Context:
    """What a subcommand runs with: its arguments, the screen, and the daemon."""

    args: argparse.Namespace
    screen: Screen
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    _client: Client | None = field(default=None, init=False)

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    def client(self, timeout: float = TIMEOUT) -> Client:
        """The client for the daemon named by the options (made on first use, waiting
        `timeout` seconds for an answer)."""
        if self._client is None:
            args = self.args
            target = resolve_target(
                self.environ,
                socket=args.socket,
                url=args.api_url,
                token=args.token,
                config_path=args.config,
            )
            self._client = Client(target, timeout)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def printed_json(self, answer: Answer) -> bool:
        """With `--json`, print the answer exactly as received and return True."""
        if self.json:
            self.screen.raw(answer.text)
        return self.json


def subcommand(
    group: Any,
    name: str,
    text: str,
    handler: Handler,
    common: argparse.ArgumentParser | None,
    target: str | None = "ID",
) -> argparse.ArgumentParser:
    """Add command `name` to the subparsers `group`, with a positional `target` (its
    dest is the lower-cased name) and the `common` options when it talks to the daemon.
    """
    parser: argparse.ArgumentParser = group.add_parser(
        name, parents=[common] if common else [], help=text
    )
    if target:
        parser.add_argument(target.lower(), metavar=target)
    parser.set_defaults(handler=handler)
    return parser


def common_options() -> argparse.ArgumentParser:
    """The options of every command that talks to the daemon."""
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_argument_group("where the daemon is")
    where.add_argument("--socket", help="the API's Unix socket (default: $HOOKD_SOCKET)")
    where.add_argument(
        "--config", help="take the socket from this config file (default: $HOOKD_CONFIG)"
    )
    where.add_argument(
        "--url",
        dest="api_url",
        metavar="URL",
        help="the API over TCP instead, e.g. http://127.0.0.1:8787",
    )
    where.add_argument("--token", help="the TCP API's token (default: $HOOKD_TOKEN)")
    common.add_argument("--json", action="store_true", help="print the API's JSON unchanged")
    return common


def paging_options(parser: argparse.ArgumentParser) -> None:
    """`--limit` and `--all` on a list command."""
    parser.add_argument(
        "--limit", type=positive, default=50, help="show at most this many (default 50)"
    )
    parser.add_argument("--all", action="store_true", help="show every one, page after page")


def positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


Render = Callable[[Screen, list[Any]], None]


def print_list(
    context: Context, path: str, params: dict[str, str], render: Render, nothing: str
) -> int:
    """Fetch a list as `--limit`/`--all` ask and print it with `render`.

    With `--json`, one page is printed exactly as received; several are printed as one
    page holding all their items, with the cursor of the last. An empty list is the
    note `nothing`.
    """
    args = context.args
    wanted = None if args.all else args.limit
    items: list[Any] = []
    texts: list[str] = []
    cursor: str | None = None
    while True:
        size = MAX_PAGE if wanted is None else min(MAX_PAGE, wanted - len(items))
        query: dict[str, str | int] = {**params, "limit": size}
        if cursor:
            query["cursor"] = cursor
        answer = context.client().get(path, query)
        page = answer.data()
        texts.append(answer.text)
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None or (wanted is not None and len(items) >= wanted):
            break
    if context.json:
        merged = {"items": items, "next_cursor": cursor}
        compact = json.dumps(merged, ensure_ascii=False, separators=(",", ":"))
        context.screen.raw(texts[0] if len(texts) == 1 else compact)
    elif not items:
        context.screen.note(nothing)
    else:
        render(context.screen, items)
        if cursor is not None:
            context.screen.note(f"(showing {len(items)}; there may be more: --limit N or --all)")
    return 0


def since_time(text: str, now: float) -> str:
    """`--since` as RFC 3339 UTC: a duration back from `now` ("2h") or a time."""
    return option_time("--since", text, now)


def option_time(option: str, text: str, now: float, *, ahead: bool = False) -> str:
    """A time option as RFC 3339 UTC: a duration ("2h") back from `now`, or on from it
    when `ahead`; or a time.

    A time without an offset is local time; seconds may be left out
    ("2024-01-01T10:00Z").
    """
    try:
        seconds = parse_duration(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise UsageError(
                f"{option}: expected a duration like 2h or 30m, or a time like "
                f"2024-01-01T10:00Z, got {text!r}"
            ) from None
        stamp = moment.astimezone(UTC)
    else:
        stamp = datetime.fromtimestamp(now + seconds if ahead else now - seconds, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def secret_options(parser: argparse.ArgumentParser, text: str) -> None:
    """`--secret S|-` and `--secret-file PATH`; `text` says what the secret is for."""
    given = parser.add_mutually_exclusive_group()
    given.add_argument("--secret", metavar="S|-", help=f"{text}; '-' reads it from standard input")
    given.add_argument("--secret-file", metavar="PATH", help="read the secret from this file")


def given_secret(context: Context, *, environment: bool) -> str | None:
    """The secret given by `secret_options`, else HOOKD_SECRET when `environment`, else
    None."""
    args = context.args
    if args.secret is not None and args.secret != "-":
        return str(args.secret)
    if args.secret == "-" or args.secret_file is not None:
        name, path = ("--secret-file", args.secret_file) if args.secret_file else ("--secret", "-")
        try:
            secret = read_source(name, path).decode("utf-8").strip()
        except UnicodeDecodeError:
            raise UsageError(f"{name}: the secret is not UTF-8 text") from None
        if not secret:
            raise UsageError(f"{name}: no secret in {'standard input' if path == '-' else path}")
        return secret
    if environment and context.environ.get("HOOKD_SECRET"):
        return context.environ["HOOKD_SECRET"].strip()
    return None


def read_input(name: str, value: str) -> bytes:
    """The bytes of an option given as text, `@file` or `-` (standard input)."""
    if value == "-" or value.startswith("@"):
        return read_source(name, value.removeprefix("@"))
    return value.encode()


def read_source(name: str, path: str) -> bytes:
    """The bytes of the file at `path`, or of standard input for `-`.

    An unreadable file is a usage error naming the option `name`.
    """
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise UsageError(f"{name}: cannot read {path}: {exc.strerror}") from None
