"""hookd's configuration: a TOML file decoded into frozen msgspec Structs.

Rules (the README's "Configuration"; docs/ARCHITECTURE.md):
- Every key has a production default; the file overrides what it names. Unknown keys,
  wrong types and bad values are refused with a `ConfigError` naming the key
  (`delivery.concurrency: ...`); the CLI turns that into exit status 2.
- Durations are strings ("500ms", "5s", "1m", "1h", "30d") or seconds.
- Endpoints declared in `[[endpoint]]` tables are loaded at start with ids derived from
  their URL (or the `id` they give), beside the ones made through the API.
- Event types declared in `[[event_type]]` tables join the catalog (`domain.catalog`);
  `ingest.validate` says how events are checked against it.
- A reload (`plan_reload`) takes the file's `delivery`, `ingest`, `log`, `endpoint` and
  `event_type`; what is bound at start (RESTART_SECTIONS: every `server.*` and
  `storage.*` key) keeps its running value, each key changed named as refused (an API
  token's value never shown).
- The TCP API's token comes from one of `server.api_token` (inline),
  `server.api_token_file` (a file holding it) or `server.api_token_credential` (a
  systemd credential: `$CREDENTIALS_DIRECTORY/<name>`); `load` reads it into
  `server.api_token`. A TCP listener needs one, loopback included (the Unix socket's
  file permissions guard it; TCP has no such guard), and a token has at least 32
  visible ASCII characters (`hookd config gen-token` prints one).
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import tomllib
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal, NamedTuple

import msgspec

from hookd.domain import catalog
from hookd.domain import endpoints as endpoint_rules
from hookd.domain.durations import parse_duration

DEFAULT_PATH = "/etc/hookd/hookd.toml"
MIN_TOKEN = 32  # characters of an API token
TOKEN_SOURCES = ("api_token", "api_token_file", "api_token_credential")
_TOKEN = re.compile(r"[\x21-\x7e]+")  # what a Bearer token can carry: visible ASCII
_HOST = re.compile(r"(?:[A-Za-z0-9\-.]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")  # allowed_hosts
_CREDENTIAL = re.compile(r"[A-Za-z0-9_.\-]+")  # a file name in $CREDENTIALS_DIRECTORY


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key."""


class Duration(float):
    """Seconds, written in the file as "5s", "1m", ... or a number."""


Positive = Annotated[int, msgspec.Meta(ge=1)]


class ServerConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    socket: str = "/run/hookd/hookd.sock"
    socket_mode: str = "0660"
    listen: str = ""
    api_token: str = ""
    api_token_file: str = ""
    api_token_credential: str = ""
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 1_048_576
    request_timeout: Duration = Duration(10)
    idle_timeout: Duration = Duration(60)
    max_connections: Positive = 1024  # on the Unix socket
    max_tcp_connections: Positive = 256
    unauthenticated_timeout: Duration = Duration(5)  # TCP, until a request passes the token
    # Host header values the TCP listener answers besides its own address and localhost's
    # (a reverse proxy's name: "hookd.example.com" or "hookd.example.com:443").
    allowed_hosts: list[str] = msgspec.field(default_factory=list)


class StorageConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    path: str = "/var/lib/hookd/hookd.db"
    durability: Literal["full", "normal"] = "full"
    retention: Duration = Duration(30 * 86400)
    subject_index: bool = True  # index the people events name (README "Personal data")
    # The key ring endpoint secrets are sealed under (README "Secrets at rest"); the
    # systemd credential hookd-key, when the service has one, comes first.
    key_file: str = ""


class DeliveryConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    timeout: Duration = Duration(5)
    retry_schedule: list[Duration] = msgspec.field(
        default_factory=lambda: [Duration(d) for d in (0, 60, 300, 900, 3600)]
    )
    concurrency: Positive = 64
    per_endpoint_concurrency: Positive = 8
    allow_private_networks: bool = False
    allowed_networks: list[str] = msgspec.field(default_factory=list)
    require_https: bool = False
    ca_file: str = ""
    shutdown_grace: Duration = Duration(10)
    disable_after: Duration = Duration(0)  # nothing but failures this long disables; 0: never
    secret_overlap: Duration = Duration(86400)  # a rotated-out secret still signs this long


class IngestConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    validate: catalog.ValidateMode = "report"


class LogConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    level: Literal["debug", "info", "warning", "error"] = "info"


class EndpointConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    url: str
    events: list[str]
    secret: str
    id: str = ""
    description: str = ""
    enabled: bool = True


class Config(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    storage: StorageConfig = msgspec.field(default_factory=StorageConfig)
    delivery: DeliveryConfig = msgspec.field(default_factory=DeliveryConfig)
    ingest: IngestConfig = msgspec.field(default_factory=IngestConfig)
    log: LogConfig = msgspec.field(default_factory=LogConfig)
    endpoint: list[EndpointConfig] = msgspec.field(default_factory=list)
    event_type: list[catalog.CustomType] = msgspec.field(default_factory=list)


def _dec_hook(kind: type, value: Any) -> Any:
    if kind is Duration:
        if not isinstance(value, str | int | float):
            raise ValueError(f"expected a duration like '5s', got {type(value).__name__}")
        return Duration(parse_duration(value))
    raise NotImplementedError(kind)


_PATH = re.compile(r"^\$\.?")
_UNKNOWN = re.compile(r"Object contains unknown field `([^`]*)`(?: - at `([^`]*)`)?")


def _key_message(error: msgspec.ValidationError) -> str:
    text = str(error)
    unknown = _UNKNOWN.fullmatch(text)
    if unknown is not None:
        field, where = unknown.groups()
        key = ".".join(p for p in (_PATH.sub("", where or ""), field) if p)
        return f"{key}: unknown key"
    message, _, where = text.rpartition(" - at `")
    if not message:
        return text
    return f"{_PATH.sub('', where.rstrip('`'))}: {message}"


def parse(text: str, source: str = "<config>") -> Config:
    """Decode and check a configuration from TOML text."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    try:
        config = msgspec.convert(raw, Config, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {_key_message(exc)}") from None
    problem = check(config)
    if problem is not None:
        raise ConfigError(f"{source}: {problem}")
    return config


def load(path: str | None = None, environ: Mapping[str, str] = os.environ) -> Config:
    """Read the config file at `path` (else $HOOKD_CONFIG, else /etc/hookd/hookd.toml),
    with the API token read from where the file says into `server.api_token`."""
    path = path or environ.get("HOOKD_CONFIG") or DEFAULT_PATH
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: config file is not UTF-8 text") from None
    config = parse(text, path)
    try:
        token = read_api_token(config.server, environ)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return msgspec.structs.replace(
        config, server=msgspec.structs.replace(config.server, api_token=token)
    )


def read_api_token(server: ServerConfig, environ: Mapping[str, str]) -> str:
    """The API token from where `server` says ("" for none), checked."""
    if server.api_token_file:
        where = f"server.api_token_file ({server.api_token_file})"
        token = _read_token(server.api_token_file, where)
    elif server.api_token_credential:
        where = f"server.api_token_credential ({server.api_token_credential})"
        directory = environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise ConfigError(
                f"{where}: $CREDENTIALS_DIRECTORY is not set; run hookd under systemd with "
                f"LoadCredential={server.api_token_credential}:/path/to/token in its unit"
            )
        token = _read_token(os.path.join(directory, server.api_token_credential), where)
    else:
        where, token = "server.api_token", server.api_token
    if token and not _TOKEN.fullmatch(token):
        raise ConfigError(f"{where}: the token must be visible ASCII characters, no spaces")
    if token and len(token) < MIN_TOKEN:
        raise ConfigError(
            f"{where}: the token has {len(token)} characters, fewer than {MIN_TOKEN}; "
            "'hookd config gen-token' prints a good one"
        )
    return token


def _read_token(path: str, where: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            token = handle.read().strip()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: {path} is not UTF-8 text") from None
    if not token:
        raise ConfigError(f"{where}: {path} is empty")
    return token


def new_api_token() -> str:
    """A random API token: 43 URL-safe characters (256 bits)."""
    return secrets.token_urlsafe(32)


def check(config: Config) -> str | None:
    """The first problem in `config` that its types cannot express, or None."""
    server, delivery = config.server, config.delivery
    if not re.fullmatch(r"0?[0-7]{3}", server.socket_mode):
        return f"server.socket_mode: expected an octal mode like '0660', got {server.socket_mode!r}"
    if not server.socket:
        return "server.socket: must name the path of the API's Unix socket"
    given = [name for name in TOKEN_SOURCES if getattr(server, name)]
    if len(given) > 1:
        return f"server.{given[1]}: give one of {', '.join(TOKEN_SOURCES)}, not {given}"
    credential = server.api_token_credential
    if credential and (not _CREDENTIAL.fullmatch(credential) or not credential.strip(".")):
        return (
            "server.api_token_credential: expected a credential name like 'hookd-token', "
            f"got {credential!r}"
        )
    if server.listen:
        problem = _listen_error(server.listen)
        if problem is None and not given:
            problem = (
                "a TCP listener needs an API token (server.api_token, api_token_file or "
                "api_token_credential; 'hookd config gen-token' prints one): unlike the Unix "
                "socket, whose file permissions guard it, a TCP port is open to every local user"
            )
        if problem is not None:
            return f"server.listen: {problem}"
    for index, host in enumerate(server.allowed_hosts):
        if not _HOST.fullmatch(host):
            return (
                f"server.allowed_hosts[{index}]: expected a host name like "
                f"'hookd.example.com' or 'hookd.example.com:443', got {host!r}"
            )
    if server.request_timeout <= 0 or server.idle_timeout <= 0:
        return "server.request_timeout and server.idle_timeout must be more than 0s"
    if server.unauthenticated_timeout <= 0:
        return "server.unauthenticated_timeout: must be more than 0s"
    if not config.storage.path:
        return "storage.path: must name the database file"
    if delivery.timeout <= 0:
        return "delivery.timeout: must be more than 0s"
    if not delivery.retry_schedule:
        return "delivery.retry_schedule: needs at least one delay (the first attempt's)"
    if len(delivery.retry_schedule) > 100:
        return "delivery.retry_schedule: at most 100 attempts"
    for index, network in enumerate(delivery.allowed_networks):
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            return f"delivery.allowed_networks[{index}]: not a CIDR network: {network!r}"
    if delivery.ca_file and not os.path.isfile(delivery.ca_file):
        return f"delivery.ca_file: no such file: {delivery.ca_file!r}"
    overlap = endpoint_rules.overlap_error(delivery.secret_overlap)
    if overlap is not None:
        return f"delivery.secret_overlap: {overlap}"
    return _endpoints_error(config.endpoint) or _event_types_error(config.event_type)


def _listen_error(listen: str) -> str | None:
    host, sep, port = listen.rpartition(":")
    if not sep or not _is_number(port) or not 0 < int(port) < 65536:
        return f"expected 'host:port' like '127.0.0.1:8787', got {listen!r}"
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return f"expected an IP address as host, got {host!r}"
    return None


def _endpoints_error(declared: list[EndpointConfig]) -> str | None:
    seen: set[str] = set()
    for index, endpoint in enumerate(declared):
        for field, problem in (
            ("url", endpoint_rules.url_error(endpoint.url)),
            ("events", endpoint_rules.events_error(endpoint.events)),
            ("secret", endpoint_rules.secret_error(endpoint.secret)),
        ):
            if problem is not None:
                return f"endpoint[{index}].{field}: {problem}"
        ident = endpoint_id(endpoint)
        if ident in seen:
            return f"endpoint[{index}]: the same URL twice; give each an 'id'"
        if endpoint.id and not re.fullmatch(r"[A-Za-z0-9_\-]{1,64}", endpoint.id):
            return f"endpoint[{index}].id: letters, digits, '_' and '-' only, at most 64"
        seen.add(ident)
    return None


def _event_types_error(declared: list[catalog.CustomType]) -> str | None:
    seen: set[str] = set()
    for index, custom in enumerate(declared):
        problem = catalog.custom_error(custom)
        if problem is not None:
            return f"event_type[{index}]: {problem}"
        if custom.name in seen:
            return f"event_type[{index}]: {custom.name!r} is declared twice"
        seen.add(custom.name)
    return None


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()


def endpoint_id(endpoint: EndpointConfig) -> str:
    """The id an endpoint declared in the file is stored under."""
    return endpoint.id or endpoint_rules.config_endpoint_id(endpoint.url)


def declared_endpoints(config: Config) -> list[dict[str, Any]]:
    """The endpoints declared in the file, as storage syncs them (each with its id)."""
    return [{**msgspec.structs.asdict(e), "id": endpoint_id(e)} for e in config.endpoint]


RESTART_SECTIONS = ("server", "storage")  # bound at start: sockets, listeners, the database
LIVE_SECTIONS = ("delivery", "ingest", "log")  # a reload applies them (with the two lists)
_HIDDEN = frozenset({"server.api_token"})


RESTART = "bound at start: takes effect at the next restart"


class Refused(NamedTuple):
    """A key a reload does not change: its running value (kept) and the file's, as
    shown in a log line, and why."""

    key: str
    kept: str
    wanted: str
    reason: str = RESTART


class Reload(NamedTuple):
    """What a reload applies: `config` (the file's, with the running values of what it
    cannot change), the live settings' keys that changed, and what it refused."""

    config: Config
    changed: list[str]
    refused: list[Refused]


def plan_reload(running: Config, read: Config) -> Reload:
    """The reload from the `running` config to the one `read` from the file."""
    refused = [
        Refused(key, _shown(key, kept), _shown(key, wanted))
        for key, kept, wanted in _differences(running, read, RESTART_SECTIONS)
    ]
    changed = [key for key, _, _ in _differences(running, read, LIVE_SECTIONS)]
    config = msgspec.structs.replace(read, server=running.server, storage=running.storage)
    return Reload(config, changed, refused)


def _differences(a: Config, b: Config, sections: tuple[str, ...]) -> Iterator[tuple[str, Any, Any]]:
    for section in sections:
        old, new = getattr(a, section), getattr(b, section)
        for name in old.__struct_fields__:
            if getattr(old, name) != getattr(new, name):
                yield f"{section}.{name}", getattr(old, name), getattr(new, name)


def _shown(key: str, value: Any) -> str:
    if key in _HIDDEN:
        return "(hidden)" if value else "(none)"
    return repr(value)


def socket_mode(config: Config) -> int:
    """`server.socket_mode` as an integer mode."""
    return int(config.server.socket_mode, 8)
