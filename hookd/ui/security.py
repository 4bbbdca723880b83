"""The console's sessions, CSRF tokens, security headers and language.

Rules (docs/ARCHITECTURE.md, "Layers"; the README's "Web console"):
- Signing in takes the API token and gives a session cookie: `<expires>.<nonce>.<mac>`,
  the MAC an HMAC-SHA256 keyed from the token, so a forged or altered cookie fails, a
  token changed signs every session out, and a cookie past `expires` is refused. The
  cookie is HttpOnly, SameSite=Strict, Path=/ui, Max-Age SESSION_LIFETIME, and Secure
  when the request came over TLS (a reverse proxy in front says so with
  `X-Forwarded-Proto: https`; the flag only ever narrows where the cookie goes).
- The CSRF token of a session is an HMAC of its nonce: the same on every form of the
  session, unknown to any page that cannot read the console, compared in constant time.
- Every console answer carries SECURITY_HEADERS: a Content-Security-Policy without
  inline script or style, framing refused, no MIME sniffing, no referrer.
- Time and random bytes are arguments: the console reads them and passes them in.
"""

from __future__ import annotations

import hashlib
import hmac

COOKIE = "hookd_session"
SESSION_LIFETIME = 8 * 3600  # seconds a sign-in lasts
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
SECURITY_HEADERS = [
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cache-Control", "no-store"),
]


class Sessions:
    """Sessions signed with a key derived from the API token."""

    def __init__(self, api_token: str) -> None:
        self._token = api_token.encode()
        self._key = hmac.digest(self._token, b"hookd console session", "sha256")

    def token_ok(self, given: str) -> bool:
        """Whether `given` is the API token (constant time)."""
        return bool(self._token) and hmac.compare_digest(given.strip().encode(), self._token)

    def new(self, now: float, nonce: bytes) -> str:
        """A new session's cookie value, valid SESSION_LIFETIME from `now`."""
        payload = f"{int(now) + SESSION_LIFETIME}.{nonce.hex()}"
        return f"{payload}.{self._mac(payload)}"

    def check(self, value: str, now: float) -> str | None:
        """The session's nonce when `value` is a cookie this daemon signed and not yet
        expired; None otherwise."""
        payload, _, mac = value.rpartition(".")
        expires, _, nonce = payload.partition(".")
        if not (expires.isascii() and expires.isdigit() and nonce and mac):
            return None
        if not hmac.compare_digest(mac.encode(), self._mac(payload).encode()):
            return None
        return nonce if now < int(expires) else None

    def csrf(self, nonce: str) -> str:
        """The CSRF token of the session `nonce`."""
        return self._mac("csrf." + nonce)

    def csrf_ok(self, nonce: str, given: str) -> bool:
        """Whether `given` is the session's CSRF token (constant time)."""
        return hmac.compare_digest(given.encode(), self.csrf(nonce).encode())

    def _mac(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()


def session_cookie(value: str, secure: bool, max_age: int = SESSION_LIFETIME) -> str:
    """The Set-Cookie value of a session (Max-Age 0 signs out)."""
    flags = f"; Path=/ui; Max-Age={max_age}; HttpOnly; SameSite=Strict"
    return f"{COOKIE}={value}{flags}" + ("; Secure" if secure else "")


def cookie_value(header: str) -> str:
    """The session cookie's value in a Cookie header, or ''."""
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return ""


def language(accept_language: str) -> str:
    """'pt-BR' when the browser prefers Portuguese to English, else 'en'."""
    ranked = []
    for position, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, position, tag.strip().lower()))
    for quality, _, tag in sorted(ranked):
        if quality < 0 and tag[:2] in ("pt", "en"):
            return "pt-BR" if tag.startswith("pt") else "en"
    return "en"
