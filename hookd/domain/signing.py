"""Signatures on delivered bodies, and their verification.

Rules (the README's "What a receiver gets"; docs/ARCHITECTURE.md):
- `X-Webhook-Signature: sha256=<hex>` is HMAC-SHA256 of the exact body bytes, keyed
  with the endpoint secret's UTF-8 bytes: the spec's scheme, checked by its receivers.
- When the secret is a Standard Webhooks secret (`whsec_<base64>`), the `webhook-id`,
  `webhook-timestamp` and `webhook-signature` headers are added too:
  `v1,<base64 HMAC-SHA256(base64-decoded key, f"{id}.{timestamp}.{body}")>`. The key is
  decoded as the Standard Webhooks and Svix libraries (JavaScript's and Python's) all
  decode it: the standard base64 alphabet, at least 4 characters, `=` padding optional
  (at most two). A `whsec_` secret that does not decode so is no such secret:
  `domain.endpoints` refuses it, so no endpoint is signed without the headers its
  `whsec_` secret promises.
- `X-Webhook-Signature` is always the current secret's alone, as the spec's receivers
  check it. During a rotation's overlap the previous secret signs
  `X-Webhook-Signature-Previous` (same form), and while a rotation is staged the next
  secret signs `X-Webhook-Signature-Next`: a receiver that accepts any of the three
  verifies every delivery whether it holds the old secret or the new, before, at and
  after the switch. Each is sent only when its secret differs from the current one.
- `webhook-signature` carries one signature per `whsec_` key among them (current,
  next, previous, in that order), separated by a space (Standard Webhooks lets
  receivers accept any of them).
- Verification compares in constant time. The timestamp is an argument: nothing here
  reads the clock.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac

SIGNATURE_HEADER = "X-Webhook-Signature"
PREVIOUS_HEADER = "X-Webhook-Signature-Previous"
NEXT_HEADER = "X-Webhook-Signature-Next"
STANDARD_PREFIX = "whsec_"


def spec_signature(secret: str, body: bytes) -> str:
    """The `X-Webhook-Signature` value: `sha256=<hex>`."""
    return "sha256=" + hmac.digest(secret.encode("utf-8"), body, "sha256").hex()


@functools.lru_cache(maxsize=1024)  # asked at every attempt; secrets are few
def standard_key(secret: str) -> bytes | None:
    """The HMAC key of a `whsec_` secret (base64, padded or not), or None when `secret`
    is not of that form."""
    if not secret.startswith(STANDARD_PREFIX):
        return None
    text = secret[len(STANDARD_PREFIX) :]
    data = text.rstrip("=")
    if len(text) < 4 or len(text) - len(data) > 2:  # what JavaScript's refuses
        return None
    try:
        key = base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return key


def standard_signature(key: bytes, event_id: str, timestamp: int, body: bytes) -> str:
    """One Standard Webhooks signature: `v1,<base64>`."""
    message = f"{event_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.digest(key, message, "sha256")).decode("ascii")


def sign(
    secret: str,
    event_id: str,
    timestamp: int,
    body: bytes,
    previous: str | None = None,
    next_secret: str | None = None,
) -> list[tuple[str, str]]:
    """The signature headers for one attempt of `body`; `previous` is a rotated-out
    secret still in its overlap, `next_secret` a staged one not yet current.
    """
    headers = [(SIGNATURE_HEADER, spec_signature(secret, body))]
    secrets = [secret]
    for name, other in ((NEXT_HEADER, next_secret), (PREVIOUS_HEADER, previous)):
        if other is not None and other not in secrets:
            headers.append((name, spec_signature(other, body)))
            secrets.append(other)
    keys = list(dict.fromkeys(key for key in map(standard_key, secrets) if key is not None))
    if keys:
        signatures = " ".join(standard_signature(k, event_id, timestamp, body) for k in keys)
        headers += [
            ("webhook-id", event_id),
            ("webhook-timestamp", str(timestamp)),
            ("webhook-signature", signatures),
        ]
    return headers


def verify_spec(secret: str, body: bytes, signature: str) -> bool:
    """True when `signature` (`sha256=<hex>`, or bare hex) signs `body` with `secret`."""
    given = signature.strip()
    given = given.removeprefix("sha256=")
    expected = spec_signature(secret, body).removeprefix("sha256=")
    return hmac.compare_digest(given.lower().encode(), expected.encode())


def verify_standard(secret: str, event_id: str, timestamp: str, body: bytes, header: str) -> bool:
    """True when any `v1,` signature in the `webhook-signature` header signs the message."""
    key = standard_key(secret)
    if key is None or not (timestamp.isascii() and timestamp.isdigit()):
        return False
    expected = standard_signature(key, event_id, int(timestamp), body).encode()
    return any(hmac.compare_digest(candidate.encode(), expected) for candidate in header.split())
