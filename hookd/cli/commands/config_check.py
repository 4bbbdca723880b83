"""`hookd config check [FILE]`: validate a config file and print what hookd would run with;
`hookd config reload`: have the running daemon apply its file again, and say what changed;
`hookd config gen-token`: print a new API token.

Rules:
- FILE, else HOOKD_CONFIG, else /etc/hookd/hookd.toml, read as `hookd serve` reads it.
  A bad file exits 2 with the one line that names the key, as `hookd serve` would.
- The effective configuration (every default filled in) is printed as TOML that
  `hookd serve` accepts, durations in their units, with `server.api_token` and every
  endpoint `secret` masked: the output may be pasted into a ticket. A `whsec_` secret
  stays one (`whsec_MASKED`, valid base64), so the output still loads; a token read from
  `server.api_token_file` or `server.api_token_credential` is not printed at all: the
  key that names where it comes from is.
- `reload` asks the daemon (`POST /v1/config/reload`) and returns once the reload is
  over: exit 0 when applied, with what changed and any key kept at its running value; 1
  with the reason when the file was not applied (nothing changed). The unit's
  `ExecReload` runs it, so `systemctl reload hookd` returns after the reload, and fails
  when the file was not applied, on every systemd version.
- `gen-token` prints a random token of 43 URL-safe characters (256 bits) on stdout.
"""

from __future__ import annotations

import argparse
import datetime
import json
from typing import Any

import msgspec

from hookd.cli.client import UsageError
from hookd.cli.commands import Context, subcommand
from hookd.cli.output import Styled
from hookd.domain.durations import format_duration
from hookd.runtime import config

MASK = "********"
STANDARD_MASK = "whsec_MASKED"  # whsec_ + base64, as domain.endpoints wants such secrets


RELOAD_TIMEOUT = 50.0  # seconds; below the unit's TimeoutStartSec, which bounds ExecReload


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add `config check`, `config reload` and `config gen-token`."""
    parser = commands.add_parser(
        "config", help="check a config file; reload the daemon's; make an API token"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check",
        help="validate a config file; print the effective config, secrets masked",
        description="Exit 0 when the file is valid, 2 naming the bad key when not.",
    )
    check.add_argument(
        "file", metavar="FILE", nargs="?", help="default: $HOOKD_CONFIG, else /etc/hookd/hookd.toml"
    )
    check.set_defaults(handler=_check)
    reload = subcommand(
        actions,
        "reload",
        "have the running daemon read its config file again (what systemctl reload does)",
        _reload,
        common,
        None,
    )
    reload.description = (
        "Exit 0 once the file is applied, printing what changed; 1 with the reason when "
        "it was not (the daemon runs on with the configuration it had)."
    )
    token = actions.add_parser(
        "gen-token",
        help="print a new random API token (server.api_token, api_token_file)",
        description="Print 43 random URL-safe characters, e.g. "
        "'hookd config gen-token > /etc/hookd/api-token'.",
    )
    token.set_defaults(handler=_gen_token)


def _check(context: Context) -> int:
    path = context.args.file or context.environ.get("HOOKD_CONFIG") or config.DEFAULT_PATH
    try:
        settings = config.load(path)
    except config.ConfigError as exc:
        raise UsageError(f"config error: {exc}") from None
    context.screen.note(f"{path}: valid")
    context.screen.raw(f"# the effective configuration of {path}, secrets masked\n")
    context.screen.raw(effective_toml(settings))
    return 0


def _reload(context: Context) -> int:
    answer = context.client(RELOAD_TIMEOUT).post("/v1/config/reload")
    if context.printed_json(answer):
        return 0
    outcome = answer.data()
    screen = context.screen
    screen.line(Styled("configuration reloaded", "green"))
    screen.fields(
        [
            ("endpoints added", _names(outcome["endpoints_added"])),
            ("endpoints changed", _names(outcome["endpoints_changed"])),
            ("endpoints removed", _names(outcome["endpoints_removed"])),
            ("event types changed", str(outcome["event_types_changed"])),
            ("settings changed", _names(outcome["settings_changed"])),
        ]
    )
    for refused in outcome["refused"]:
        screen.note(
            f"kept {refused['key']} = {refused['kept']} (the file has {refused['wanted']}): "
            f"{refused['reason']}"
        )
    return 0


def _names(names: list[str]) -> str:
    return ", ".join(names) or "-"


def _gen_token(context: Context) -> int:
    context.screen.raw(config.new_api_token())
    return 0


def effective_toml(settings: config.Config) -> str:
    """`settings` as TOML, with every default, durations in units and secrets masked."""
    lines: list[str] = []
    for table in ("server", "storage", "delivery", "ingest", "log"):
        lines += ["", f"[{table}]"]
        lines += _pairs(getattr(settings, table))
    for endpoint in settings.endpoint:
        lines += ["", "[[endpoint]]"]
        lines += _pairs(endpoint)
    for event_type in settings.event_type:
        lines += ["", "[[event_type]]"]
        lines += _pairs(event_type)
    return "\n".join(lines[1:]) + "\n"


def _pairs(section: msgspec.Struct) -> list[str]:
    pairs = []
    for name in section.__struct_fields__:
        value = getattr(section, name)
        if value is None:  # TOML has no null: an absent key means it
            continue
        if name == "api_token" and any(getattr(section, key) for key in config.TOKEN_SOURCES[1:]):
            continue  # read from the file or credential named beside it
        if name in ("api_token", "secret") and value:
            value = _mask(value)
        pairs.append(f"{name} = {_toml(value)}")
    return pairs


def _mask(secret: str) -> str:
    return STANDARD_MASK if secret.startswith("whsec_") else MASK


def _toml(value: Any) -> str:
    if isinstance(value, config.Duration):
        return _toml(format_duration(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, dict):  # an inline table; keys quoted, which TOML always allows
        return "{" + ", ".join(f"{_toml(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, datetime.date | datetime.time):  # TOML dates and times, bare
        return value.isoformat()
    if isinstance(value, str):
        # A JSON string is a TOML basic string once DEL, which TOML wants escaped, is.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    return repr(value)
