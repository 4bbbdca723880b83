"""Endpoint fields: what a valid URL, event list, secret and id look like.

Rules:
- A URL is absolute `http://` or `https://` with a host, no user:password part, and at
  most 2048 characters. Whether the host may be private is decided when sending.
- The host must be resolvable as written: an IP address, or a name whose wire form
  (`wire_host`: IDNA for an internationalised name, the form the sender looks up) has
  labels of 1 to 63 letters, digits, '-' or '_', at most 253 characters in all (one
  final root dot allowed). A typo such as `api..example.com` is refused here, not
  discovered by a delivery.
- `events` is a non-empty list of subscription patterns (see `routing`).
- A generated secret is `whsec_` + base64 of 32 random bytes (a Standard Webhooks
  secret); a given one is kept as given (the spec's examples use `sua_chave_secreta`).
  A given secret that starts with `whsec_` must decode as a Standard Webhooks secret
  (`signing.standard_key`), or it is refused: it would promise headers it cannot sign.
- Ids of endpoints declared in the config file are derived from their URL, so they stay
  the same across restarts.
- Which secrets sign at a given time follows from what is stored (`Secrets`) and that
  time alone: a staged secret takes over at its time without anything being written
  then, and the secret it replaces keeps signing beside it for the overlap chosen when
  it was staged. The time is an argument: nothing here reads the clock.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from typing import NamedTuple
from urllib.parse import urlsplit

from hookd.core.routing import MAX_PATTERNS, pattern_error
from hookd.core.signing import STANDARD_PREFIX, standard_key

MAX_URL = 2048
MAX_HOST = 253  # characters of a DNS name, without the root dot (RFC 1035)
MAX_LABEL = 63
_LABEL = re.compile(r"[A-Za-z0-9_-]+")
MAX_SECRET = 512
MAX_DESCRIPTION = 1024
MAX_SECRET_OVERLAP = 30 * 86400  # how long a rotated-out secret may keep signing


def url_error(url: object) -> str | None:
    """Why `url` cannot be an endpoint URL, or None when it can."""
    if not isinstance(url, str) or not url:
        return "url must be a non-empty string"
    if len(url) > MAX_URL:
        return f"url is longer than {MAX_URL} characters"
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        return "url must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"url is not a valid URL: {exc}"
    if parts.scheme not in ("http", "https"):
        return f"url must start with http:// or https://, got {url[:80]!r}"
    if not parts.hostname:
        return f"url has no host: {url[:80]!r}"
    problem = host_error(parts.hostname)
    if problem is not None:
        return f"url host {parts.hostname[:80]!r} cannot be resolved: {problem}"
    if parts.username is not None or parts.password is not None:
        return "url must not carry a user name or password"
    if port == 0:
        return "url port must be between 1 and 65535"
    return None


def wire_host(host: str) -> str:
    """`host` as it is looked up and sent: an internationalised name as punycode (IDNA).

    Raises UnicodeError for a name that has no such form.
    """
    return host if host.isascii() else host.encode("idna").decode("ascii")


def host_error(host: str) -> str | None:
    """Why the host of a URL (brackets removed) cannot be resolved as written, or None."""
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    try:
        name = wire_host(host)
    except UnicodeError:
        return "not a valid internationalised name"
    name = name.removesuffix(".")
    if len(name) > MAX_HOST:
        return f"the name is longer than {MAX_HOST} characters"
    for label in name.split("."):
        if not label:
            return "an empty label (two dots in a row, or a dot at either end)"
        if len(label) > MAX_LABEL:
            return f"a label is longer than {MAX_LABEL} characters"
        if not _LABEL.fullmatch(label):
            return "labels hold only letters, digits, '-' and '_'"
    return None


def events_error(events: object) -> str | None:
    """Why `events` is not a list of subscription patterns, or None."""
    if not isinstance(events, list) or not events:
        return "events must be a non-empty list of patterns like ['cliente.*']"
    if len(events) > MAX_PATTERNS:
        return f"events holds at most {MAX_PATTERNS} patterns"
    for index, pattern in enumerate(events):
        problem = pattern_error(pattern)
        if problem is not None:
            return f"events[{index}]: {problem}"
    return None


def secret_error(secret: object) -> str | None:
    """Why `secret` cannot sign deliveries, or None."""
    if not isinstance(secret, str) or not secret:
        return "secret must be a non-empty string"
    if len(secret) > MAX_SECRET:
        return f"secret is longer than {MAX_SECRET} characters"
    if secret != secret.strip() or any(ord(c) < 0x20 for c in secret):
        return "secret must not contain control characters or surrounding spaces"
    if secret.startswith(STANDARD_PREFIX) and standard_key(secret) is None:
        return (
            f"a secret starting with {STANDARD_PREFIX!r} is a Standard Webhooks secret: the"
            " base64 of its key must follow (A-Z a-z 0-9 + /, at least 4 characters, '='"
            " padding optional); without that prefix a secret is used as given, for"
            " X-Webhook-Signature alone"
        )
    return None


def overlap_error(seconds: float) -> str | None:
    """Why a rotation cannot keep the previous secret for `seconds`, or None."""
    if not 0 <= seconds <= MAX_SECRET_OVERLAP:
        return f"the overlap must be between 0s and {MAX_SECRET_OVERLAP // 86400}d"
    return None


class Secrets(NamedTuple):
    """An endpoint's secrets as stored (times in Unix seconds): the current one; the one
    it replaced, signing beside it until `previous_until`; and a staged one that takes
    over at `next_at`, the current one then signing beside it for `next_overlap` s."""

    current: str
    previous: str | None = None
    previous_until: float | None = None
    next: str | None = None
    next_at: float | None = None
    next_overlap: float = 0.0

    def at(self, now: float) -> Secrets:
        """These secrets as they stand at `now`: a staged secret whose time has come is
        the current one, and the one it replaced the previous one for its overlap."""
        if self.next is None or self.next_at is None or now < self.next_at:
            return self
        if self.next_overlap <= 0:
            return Secrets(self.next)
        return Secrets(self.next, self.current, self.next_at + self.next_overlap)

    def signing(self, now: float) -> tuple[str, str | None, str | None]:
        """The secrets that sign an attempt made at `now`: (current, previous, next); a
        previous one past its overlap, or a next one not staged, is None."""
        state = self.at(now)
        until = state.previous_until
        previous = state.previous if until is not None and now < until else None
        return state.current, previous, state.next

    def rotated(
        self, secret: str, now: float, overlap: float, activate_at: float | None = None
    ) -> Secrets:
        """After a rotation to `secret` asked at `now`: it is current at once, or from
        `activate_at` when that is later (staged; a secret staged before is replaced);
        the one it replaces keeps signing for `overlap` seconds from then."""
        state = self.at(now)
        if activate_at is not None and activate_at > now:
            return state._replace(next=secret, next_at=activate_at, next_overlap=overlap)
        if overlap <= 0:
            return Secrets(secret)
        return Secrets(secret, state.current, now + overlap)


def new_secret(random32: bytes) -> str:
    """A Standard Webhooks secret made of 32 random bytes."""
    return STANDARD_PREFIX + base64.b64encode(random32).decode("ascii")


def config_endpoint_id(url: str) -> str:
    """The stable id of an endpoint declared in the config file."""
    return "ep_cfg_" + hashlib.sha256(url.encode()).hexdigest()[:16]
