"""hookd.domain.endpoints: which secrets sign at a given time, across rotations; which
endpoint URLs are accepted, judged by their host."""

from __future__ import annotations

import base64
import hashlib

import pytest

from hookd.domain.endpoints import (
    MAX_SECRET,
    MAX_SECRET_OVERLAP,
    MAX_URL,
    Secrets,
    config_endpoint_id,
    events_error,
    new_secret,
    overlap_error,
    secret_error,
    url_error,
    wire_host,
)
from hookd.domain.routing import MAX_PATTERNS
from hookd.domain.signing import standard_key

HOUR = 3600.0
T = 1_800_000_000.0  # when the staged secret takes over


def test_no_rotation_signs_with_the_current_secret_alone() -> None:
    assert Secrets("s0").signing(T) == ("s0", None, None)


def test_an_immediate_rotation_keeps_the_old_secret_for_the_overlap() -> None:
    rotated = Secrets("s0").rotated("s1", T, 2 * HOUR)
    assert rotated == Secrets("s1", "s0", T + 2 * HOUR)
    assert rotated.signing(T) == ("s1", "s0", None)
    assert rotated.signing(T + 2 * HOUR - 1) == ("s1", "s0", None)
    assert rotated.signing(T + 2 * HOUR) == ("s1", None, None)
    assert Secrets("s0").rotated("s1", T, 0) == Secrets("s1")  # a leaked secret


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (T - HOUR, ("s0", None, "s1")),  # staged: the next one signs beside
        (T - 0.001, ("s0", None, "s1")),
        (T, ("s1", "s0", None)),  # its time: current, with nothing written
        (T + 2 * HOUR - 0.001, ("s1", "s0", None)),  # the overlap counts from T
        (T + 2 * HOUR, ("s1", None, None)),
    ],
)
def test_a_staged_rotation_takes_over_at_its_time(
    now: float, expected: tuple[str, str | None, str | None]
) -> None:
    staged = Secrets("s0").rotated("s1", T - 2 * HOUR, 2 * HOUR, activate_at=T)
    assert staged == Secrets("s0", next="s1", next_at=T, next_overlap=2 * HOUR)
    assert staged.signing(now) == expected


def test_staged_during_an_earlier_overlap() -> None:
    # s0 -> s1 at once with a day's overlap, then s2 staged for an hour later.
    earlier = Secrets("s0").rotated("s1", T - HOUR, 24 * HOUR)
    staged = earlier.rotated("s2", T - HOUR / 2, HOUR, activate_at=T)
    assert staged.signing(T - 1) == ("s1", "s0", "s2")
    # At T the secret s2 replaced (s1) is the previous one: s0's overlap ends there.
    assert staged.signing(T) == ("s2", "s1", None)
    assert staged.signing(T + HOUR) == ("s2", None, None)


def test_what_replaces_a_staged_secret() -> None:
    staged = Secrets("s0").rotated("s1", T - HOUR, HOUR, activate_at=T)
    assert staged.rotated("s2", T - HOUR, HOUR, activate_at=T + HOUR).signing(T) == (
        "s0",
        None,
        "s2",
    )  # staged again: the new one replaces it
    assert staged.rotated("s2", T - HOUR, HOUR).signing(T - 1) == ("s2", "s0", None)  # at once
    # An activation time not in the future is a rotation at once.
    assert staged.rotated("s2", T - HOUR, HOUR, activate_at=T - HOUR) == (Secrets("s2", "s0", T))


def test_a_rotation_after_a_staged_one_took_over_starts_from_it() -> None:
    staged = Secrets("s0").rotated("s1", T - HOUR, HOUR, activate_at=T)
    # Nothing was written at T; a rotation at T + 10 min sees s1 as current.
    assert staged.at(T + 600) == Secrets("s1", "s0", T + HOUR)
    assert staged.rotated("s2", T + 600, HOUR) == Secrets("s2", "s1", T + 600 + HOUR)


def test_a_zero_overlap_leaves_no_previous_secret() -> None:
    staged = Secrets("s0").rotated("s1", T - HOUR, 0, activate_at=T)
    assert staged.at(T) == Secrets("s1")
    assert Secrets("s0").rotated("s1", T, 0) == Secrets("s1")


def test_an_overlap_of_one_second_is_kept() -> None:
    staged = Secrets("s0").rotated("s1", T - HOUR, 1, activate_at=T)
    assert staged.at(T) == Secrets("s1", "s0", T + 1)
    assert Secrets("s0").rotated("s1", T, 1) == Secrets("s1", "s0", T + 1)


def test_a_next_secret_without_its_time_never_takes_over() -> None:
    odd = Secrets("s0", next="s1")
    assert odd.at(T) is odd
    assert odd.signing(T) == ("s0", None, "s1")


# -- the fields' validators: their messages are the API's 422s -------------------------

SOFT_HYPHEN = "\xad"  # not allowed in a host name
SCHEME = "url must start with http:// or https://, got "
LONG_URL = "https://erp.example.com/" + "a" * (MAX_URL - 24)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://erp.example.com/hook", None),
        ("http://erp.example.com:8080/x?a=1#f", None),
        ("https://ação.example.com/", None),  # an internationalised name
        ("http://[2001:db8::1]:1/", None),  # port 1 is a port
        (LONG_URL, None),  # 2048 characters
        (None, "url must be a non-empty string"),
        ("", "url must be a non-empty string"),
        (5, "url must be a non-empty string"),
        (LONG_URL + "b", "url is longer than 2048 characters"),
        ("https://erp.example.com/a b", "url must not contain spaces or control characters"),
        ("https://erp.example.com/\x1f", "url must not contain spaces or control characters"),
        ("https://erp.example.com/\x7f", None),  # DEL is not below 0x20: urlsplit takes it
        ("http://[::1/", "url is not a valid URL: Invalid IPv6 URL"),
        ("http://h:99999/", "url is not a valid URL: Port out of range 0-65535"),
        ("ftp://erp.example.com/", SCHEME + "'ftp://erp.example.com/'"),
        ("erp.example.com/hook", SCHEME + "'erp.example.com/hook'"),
        ("ftp://" + "x" * 100, SCHEME + repr("ftp://" + "x" * 74)),  # quoted to 80 characters
        ("https:///hook", "url has no host: 'https:///hook'"),
        ("https://:80" + "/a" * 50, f"url has no host: {('https://:80' + '/a' * 50)[:80]!r}"),
        ("http://\xad/", "url host '\\xad' cannot be resolved: not a valid internationalised name"),
        (
            "http://a..b/",
            "url host 'a..b' cannot be resolved: "
            "an empty label (two dots in a row, or a dot at either end)",
        ),
        (
            "http://a*.example/",
            "url host 'a*.example' cannot be resolved: "
            "labels hold only letters, digits, '-' and '_'",
        ),
        (
            "http://" + SOFT_HYPHEN * 90,  # quoted to 80 characters
            f"url host {SOFT_HYPHEN * 80!r} cannot be resolved: not a valid internationalised name",
        ),
        ("https://u:p@erp.example.com/", "url must not carry a user name or password"),
        ("https://u@erp.example.com/", "url must not carry a user name or password"),
        ("https://:p@erp.example.com/", "url must not carry a user name or password"),
        ("https://erp.example.com:0/", "url port must be between 1 and 65535"),
    ],
)
def test_url_error(url: object, problem: str | None) -> None:
    assert url_error(url) == problem


@pytest.mark.parametrize(
    ("events", "problem"),
    [
        (["cliente.*"], None),
        (["*"] * MAX_PATTERNS, None),
        ([], "events must be a non-empty list of patterns like ['cliente.*']"),
        ("cliente.*", "events must be a non-empty list of patterns like ['cliente.*']"),
        (None, "events must be a non-empty list of patterns like ['cliente.*']"),
        (["*"] * (MAX_PATTERNS + 1), "events holds at most 100 patterns"),
        (
            ["cliente.*", "tarefa"],  # the index of the bad one, and why
            "events[1]: 'tarefa' is not a pattern: event names are dotted, e.g. 'tarefa.*'",
        ),
        (["x.y", 5], "events[1]: a pattern must be a string, got int"),
    ],
)
def test_events_error(events: object, problem: str | None) -> None:
    assert events_error(events) == problem


WHSEC_PROBLEM = (
    "a secret starting with 'whsec_' is a Standard Webhooks secret: the base64 of its key"
    " must follow (A-Z a-z 0-9 + /, at least 4 characters, '=' padding optional); without"
    " that prefix a secret is used as given, for X-Webhook-Signature alone"
)


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("sua_chave_secreta", None),  # the spec's example: used as given
        ("whsec_" + base64.b64encode(b"k" * 32).decode(), None),
        ("x" * MAX_SECRET, None),
        ("a b", None),  # inner spaces are part of the secret
        (None, "secret must be a non-empty string"),
        ("", "secret must be a non-empty string"),
        (b"s", "secret must be a non-empty string"),
        ("x" * (MAX_SECRET + 1), "secret is longer than 512 characters"),
        (" s", "secret must not contain control characters or surrounding spaces"),
        ("s ", "secret must not contain control characters or surrounding spaces"),
        ("s\x00t", "secret must not contain control characters or surrounding spaces"),
        ("s\x1ft", "secret must not contain control characters or surrounding spaces"),
        ("s t", None),
        ("whsec_not base64!", WHSEC_PROBLEM),  # refused: it would promise headers it can't sign
        ("whsec_", WHSEC_PROBLEM),
        ("whsec", None),  # not the prefix: an ordinary secret
    ],
)
def test_secret_error(secret: object, problem: str | None) -> None:
    assert secret_error(secret) == problem


@pytest.mark.parametrize(
    ("seconds", "problem"),
    [
        (0, None),
        (0.5, None),
        (MAX_SECRET_OVERLAP, None),  # 30 days
        (-0.001, "the overlap must be between 0s and 30d"),
        (MAX_SECRET_OVERLAP + 0.001, "the overlap must be between 0s and 30d"),
    ],
)
def test_overlap_error(seconds: float, problem: str | None) -> None:
    assert overlap_error(seconds) == problem


def test_new_secret_is_whsec_and_the_base64_of_the_bytes() -> None:
    secret = new_secret(bytes(range(32)))
    assert secret == "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    assert standard_key(secret) == bytes(range(32))
    assert secret_error(secret) is None


def test_config_endpoint_id_is_stable_and_follows_the_url() -> None:
    # the id of a config endpoint must not change across restarts or releases
    assert config_endpoint_id("https://erp.example.com/hook") == (
        "ep_cfg_" + hashlib.sha256(b"https://erp.example.com/hook").hexdigest()[:16]
    )
    assert config_endpoint_id("https://ação.example.com/") == (
        "ep_cfg_" + hashlib.sha256("https://ação.example.com/".encode()).hexdigest()[:16]
    )
    assert len(config_endpoint_id("x")) == len("ep_cfg_") + 16


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com/hook",
        "https://api.example.com./hook",  # a fully qualified name, root dot included
        "http://localhost:3000/webhook",
        "http://127.0.0.1:3000/webhook",
        "http://[::1]:8080/",
        "http://[fe80::1%25eth0]/",  # a zone index
        "https://xn--n3h.example/",  # punycode as such
        "http://☃.example/",  # an internationalised name (IDNA)
        "http://My_Host.internal/",  # an underscore: fine in /etc/hosts and many zones
        f"http://{'a' * 63}.example.com/",  # the longest label
        "http://" + ".".join(["a" * 63] * 3 + ["b" * 61]) + "/",  # 253 characters
    ],
)
def test_resolvable_hosts_are_accepted(url: str) -> None:
    assert url_error(url) is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://api..example.com/hook", "empty label"),
        ("http://a..b/", "empty label"),
        ("http://.../", "empty label"),
        ("http://./", "empty label"),
        ("http://.example.com/", "empty label"),
        ("http://example.com../", "empty label"),
        (f"http://{'a' * 64}.example.com/", "longer than 63"),
        (f"http://{'a' * 64}/", "longer than 63"),
        ("http://" + ".".join(["a" * 63] * 3 + ["b" * 62]) + "/", "longer than 253"),
        ("http://a!b.example/", "letters, digits"),
        ("http://a%2eb.example/", "letters, digits"),
        ("http://a*.example/", "letters, digits"),
        ("http://\ufffd.example/", "internationalised"),  # prohibited in IDNA names
        ("http://\u2488.example/", "empty label"),  # IDNA maps "⒈" to "1.": a dot too many
        ("http://" + "é" * 60 + ".example/", "internationalised"),  # punycode over 63
    ],
)
def test_hosts_that_cannot_be_resolved_as_written_are_refused(url: str, why: str) -> None:
    problem = url_error(url)
    assert problem is not None
    assert why in problem, problem


def test_wire_host_is_what_the_sender_looks_up() -> None:
    assert wire_host("☃.example") == "xn--n3h.example"
    assert wire_host("api.example.com") == "api.example.com"
    assert wire_host("::1") == "::1"
