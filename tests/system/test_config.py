"""hookd.runtime.config: defaults, durations, and refusals that name the bad key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hookd.runtime.config import (
    Config,
    ConfigError,
    StorageConfig,
    endpoint_id,
    load,
    parse,
    socket_mode,
)

REPO = Path(__file__).resolve().parents[2]
ENDPOINT = '[[endpoint]]\nurl = "https://erp.example.com/hook"\nevents = ["cliente.*"]\n'
TOKEN = "0123456789abcdef0123456789abcdef"  # 32 characters: the shortest API token


def test_defaults() -> None:
    config = parse("")
    assert config == Config()
    assert config.server.socket == "/run/hookd/hookd.sock"
    assert socket_mode(config) == 0o660
    assert config.server.listen == ""
    assert config.server.api_token == ""
    assert config.server.max_body_bytes == 1_048_576
    assert config.storage.path == "/var/lib/hookd/hookd.db"
    assert config.storage.durability == "full"
    assert config.storage.retention == 30 * 86400.0
    assert config.delivery.timeout == 5.0
    assert config.delivery.retry_schedule == [0.0, 60.0, 300.0, 900.0, 3600.0]
    assert config.delivery.concurrency == 64
    assert config.delivery.per_endpoint_concurrency == 8
    assert config.delivery.allow_private_networks is False
    assert config.delivery.require_https is False
    assert config.log.level == "info"
    assert config.endpoint == []


def test_durations_as_strings_or_seconds() -> None:
    config = parse(
        """
[server]
request_timeout = "500ms"
idle_timeout = 90
[storage]
retention = "7d"
[delivery]
timeout = 2.5
retry_schedule = ["0s", "30s", 120, "1.5h"]
shutdown_grace = "1m"
"""
    )
    assert config.server.request_timeout == 0.5
    assert config.server.idle_timeout == 90.0
    assert config.storage.retention == 7 * 86400.0
    assert config.delivery.timeout == 2.5
    assert config.delivery.retry_schedule == [0.0, 30.0, 120.0, 5400.0]
    assert config.delivery.shutdown_grace == 60.0


def test_endpoints_declared_in_the_file() -> None:
    config = parse(
        ENDPOINT
        + 'secret = "whsec_abc="\n'
        + '[[endpoint]]\nurl = "https://erp.example.com/hook"\nevents = ["*"]\n'
        + 'secret = "s"\nid = "erp-2"\nenabled = false\n'
    )
    first, second = config.endpoint
    assert (first.url, first.events, first.secret, first.enabled) == (
        "https://erp.example.com/hook",
        ["cliente.*"],
        "whsec_abc=",
        True,
    )
    assert endpoint_id(first).startswith("ep_cfg_")
    assert endpoint_id(first) == endpoint_id(parse(ENDPOINT + 'secret = "x"').endpoint[0])
    assert endpoint_id(second) == "erp-2"
    assert second.enabled is False


@pytest.mark.parametrize(
    "text",
    [
        f'[server]\nlisten = "127.0.0.1:8787"\napi_token = "{TOKEN}"',  # loopback with a token
        f'[server]\nlisten = "[::1]:8787"\napi_token = "{TOKEN}"',  # IPv6 loopback
        f'[server]\nlisten = "0.0.0.0:8787"\napi_token = "{TOKEN}"',  # beyond loopback
        '[server]\nlisten = "127.0.0.1:8787"\napi_token_file = "/etc/hookd/api-token"',
        '[server]\nlisten = "127.0.0.1:8787"\napi_token_credential = "hookd-token"',
        '[server]\nsocket_mode = "660"',  # three octal digits
        '[delivery]\nallowed_networks = ["10.0.5.0/24", "fd00::/8"]',  # CIDRs
        '[storage]\ndurability = "normal"',  # the other durability
        '[storage]\nretention = "0"',  # keep everything
    ],
)
def test_accepted(text: str) -> None:
    parse(text)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[server]\nfoo = 1", "server.foo"),  # unknown key in a table
        ("foo = 1", "foo"),  # unknown top-level key
        ("[delivery]\nconcurrency = 0", "delivery.concurrency"),  # must be >= 1
        ("[delivery]\nper_endpoint_concurrency = -1", "delivery.per_endpoint_concurrency"),
        ('[delivery]\nconcurrency = "8"', "delivery.concurrency"),  # a string, not an int
        ('[delivery]\ntimeout = "5x"', "delivery.timeout"),  # bad duration
        ("[delivery]\ntimeout = -1", "delivery.timeout"),  # negative
        ("[delivery]\ntimeout = 0", "delivery.timeout"),  # zero
        ("[delivery]\ntimeout = true", "delivery.timeout"),  # a bool
        ("[delivery]\ntimeout = nan", "delivery.timeout"),  # TOML's nan is no duration
        ('[delivery]\nretry_schedule = ["0s", "1y"]', "delivery.retry_schedule[1]"),  # item
        ("[delivery]\nretry_schedule = [0, nan]", "delivery.retry_schedule[1]"),  # nan item
        ("[delivery]\nretry_schedule = []", "delivery.retry_schedule"),  # no attempts
        ('[delivery]\nretry_schedule = "1m"', "delivery.retry_schedule"),  # not a list
        ("[storage]\nretention = nan", "storage.retention"),  # nan
        ('[server]\nrequest_timeout = "0s"', "server.request_timeout"),  # zero
        ('[storage]\ndurability = "sometimes"', "storage.durability"),  # bad durability
        ('[storage]\npath = ""', "storage.path"),  # no database
        ('[server]\nsocket_mode = "999"', "server.socket_mode"),  # not octal
        ('[server]\nsocket_mode = "rw-rw----"', "server.socket_mode"),  # symbolic
        ('[server]\nsocket = ""', "server.socket"),  # no socket
        ('[server]\nlisten = "0.0.0.0:8787"', "server.listen"),  # beyond loopback, no token
        ('[server]\nlisten = "192.168.1.10:8787"', "server.listen"),  # LAN, no token
        ('[server]\nlisten = "127.0.0.1:8787"', "server.listen"),  # loopback, no token
        ('[server]\nlisten = "[::1]:8787"', "server.listen"),  # IPv6 loopback, no token
        (f'[server]\napi_token = "{TOKEN}"\napi_token_file = "f"', "server.api_token_file"),
        ('[server]\napi_token_file = "f"\napi_token_credential = "c"', "api_token_credential"),
        ('[server]\napi_token_credential = "../../etc/shadow"', "server.api_token_credential"),
        ('[server]\napi_token_credential = ".."', "server.api_token_credential"),
        ('[server]\nlisten = "localhost:8787"', "server.listen"),  # a name, not an address
        ('[server]\nlisten = "127.0.0.1:0"', "server.listen"),  # port 0
        ('[server]\nlisten = "127.0.0.1"', "server.listen"),  # no port
        ("[server]\nmax_body_bytes = 10", "server.max_body_bytes"),  # below 1 KiB
        ('[log]\nlevel = "trace"', "log.level"),  # unknown level
        ('[delivery]\nallowed_networks = ["10.0.0.0/33"]', "delivery.allowed_networks[0]"),
        ('[delivery]\nca_file = "/nonexistent/ca.pem"', "delivery.ca_file"),  # missing file
        ("server = 5", "server"),  # a value where a table belongs
        (ENDPOINT.replace("https://", "ftp://") + 'secret = "s"', "endpoint[0].url"),  # ftp
        (ENDPOINT + 'secret = "s"\n' + ENDPOINT + 'secret = "t"', "endpoint[1]"),  # same URL
        (ENDPOINT.replace('"cliente.*"', '"cliente"') + 'secret = "s"', "endpoint[0].events"),
        (ENDPOINT.replace('"cliente.*"', '"cliente.*\\n"') + 'secret = "s"', "endpoint[0].events"),
        (ENDPOINT.replace('["cliente.*"]', "[]") + 'secret = "s"', "endpoint[0].events"),  # none
        (ENDPOINT + 'secret = ""', "endpoint[0].secret"),  # empty secret
        (ENDPOINT + 'secret = "whsec_not-base64"', "endpoint[0].secret"),  # whsec_ but no key
        (ENDPOINT, "secret"),  # secret missing
        (ENDPOINT + 'secret = "s"\nfoo = 1', "endpoint[0].foo"),  # unknown endpoint key
        (ENDPOINT + 'secret = "s"\nid = "bad id"', "endpoint[0].id"),  # bad id
        ('[ingest]\nvalidate = "always"', "ingest.validate"),  # not known, strict or off
        ('[delivery]\nsecret_overlap = "31d"', "delivery.secret_overlap"),  # over 30 days
        ('[[event_type]]\nname = "Pedido"', "event_type[0]"),  # not a dotted name
        ('[[event_type]]\nname = "cliente.criado"', "event_type[0]"),  # the spec's already
        ('[[event_type]]\nname = "hookd.x"', "event_type[0]"),  # hookd's own
        ('[[event_type]]\nname = "a.b"\n[[event_type]]\nname = "a.b"', "event_type[1]"),
        ('[[event_type]]\nname = "a.b"\nrequired = "id"', "event_type[0].required"),
        ('[[event_type]]\nname = "a.b"\nrequerid = ["id"]', "event_type[0].requerid"),  # typo
        ('[[event_type]]\nname = "a.b"\nrequired = ["id"]\nexample = {}', "event_type[0]"),
    ],
)
def test_refused_with_the_key_named(text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(key)) as info:
        parse(text, "test.toml")
    assert str(info.value).startswith("test.toml: ")


def test_not_toml() -> None:
    with pytest.raises(ConfigError, match=r"^x\.toml: not valid TOML"):
        parse("[server\n", "x.toml")


def test_load_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=re.escape(str(missing))):
        load(str(missing))


def test_load_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('[log]\n# configuração\nlevel = "info"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match="UTF-8"):
        load(str(path))


def test_load_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "hookd.toml"
    path.write_text('[delivery]\ntimeout = "3s"\n', encoding="utf-8")
    assert load(str(path)).delivery.timeout == 3.0


def test_load_names_the_file_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "hookd.toml"
    path.write_text("[delivery]\nconcurrency = 0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: delivery.concurrency")):
        load(str(path))


# What the production config sets beyond the defaults: the key file the package makes.
PACKAGED = Config(storage=StorageConfig(key_file="/etc/hookd/hookd.key"))


def test_production_config_in_repo_is_the_defaults() -> None:
    assert load(str(REPO / "conf" / "hookd.toml")) == PACKAGED


def test_production_config_comments_show_the_defaults() -> None:
    """Uncommenting every `# key = value` line of conf/hookd.toml changes nothing."""
    text = (REPO / "conf" / "hookd.toml").read_text(encoding="utf-8")
    settings, _, _endpoints = text.partition("# Endpoints can also be declared")
    uncommented = re.sub(r"(?m)^# ([a-z_]+ = .*)$", r"\1", settings)
    assert uncommented.count("\n# ") < settings.count("\n# ")  # something was uncommented
    assert parse(uncommented, "uncommented") == PACKAGED


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("server", "message"),
    [
        ('api_token = "t0k"', "server.api_token: the token has 3 characters, fewer than 32"),
        (f'api_token = "{TOKEN[:-1]}"', "fewer than 32; 'hookd config gen-token' prints"),
        (f'api_token = "{TOKEN[:-1]} "', "visible ASCII characters, no spaces"),
        ('api_token_file = "{dir}/short"', "server.api_token_file ({dir}/short): the token has 5"),
        ('api_token_file = "{dir}/none"', "cannot read {dir}/none: No such file"),
        ('api_token_file = "{dir}/empty"', "{dir}/empty is empty"),
        ('api_token_credential = "none"', "$CREDENTIALS_DIRECTORY is not set"),
    ],
)
def test_load_refuses_a_token_it_cannot_read_or_too_short(
    tmp_path: Path, server: str, message: str
) -> None:
    write(tmp_path / "short", "short\n")
    write(tmp_path / "empty", "\n")
    text = f'[server]\nlisten = "127.0.0.1:8787"\n{server.format(dir=tmp_path)}\n'
    path = write(tmp_path / "hookd.toml", text)
    with pytest.raises(ConfigError, match=re.escape(message.format(dir=tmp_path))):
        load(str(path), {})


def test_load_reads_the_token_from_a_file_or_a_systemd_credential(tmp_path: Path) -> None:
    write(tmp_path / "api-token", f"  {TOKEN}\n")
    from_file = write(tmp_path / "a.toml", f'[server]\napi_token_file = "{tmp_path}/api-token"\n')
    assert load(str(from_file), {}).server.api_token == TOKEN
    credential = write(tmp_path / "b.toml", '[server]\napi_token_credential = "api-token"\n')
    loaded = load(str(credential), {"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert loaded.server.api_token == TOKEN
    inline = write(tmp_path / "c.toml", f'[server]\napi_token = "{TOKEN}"\n')
    assert load(str(inline), {}).server.api_token == TOKEN


def test_dev_config_in_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # its paths are relative: where `make run` runs
    (tmp_path / "var").mkdir()
    write(tmp_path / "var" / "api-token", TOKEN + "\n")  # what `make run` writes
    config = load(str(REPO / "conf" / "hookd.dev.toml"))
    assert config.server.api_token == TOKEN
    assert config.server.socket == "var/hookd.sock"
    assert config.server.listen == "127.0.0.1:8787"
    assert config.storage.path == "var/hookd.db"
    assert config.delivery.allow_private_networks is True
