"""hookd.core.endpoints: which endpoint URLs are accepted, judged by their host."""

from __future__ import annotations

import pytest

from hookd.core.endpoints import url_error, wire_host


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
