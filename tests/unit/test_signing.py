"""hookd.domain.signing: the spec's X-Webhook-Signature and the Standard Webhooks headers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from hookd.domain.signing import (
    sign,
    spec_signature,
    standard_key,
    standard_signature,
    verify_spec,
    verify_standard,
)

SPEC_SECRET = "sua_chave_secreta"
SPEC_BODY = b'{"test": true}'
# echo -n '{"test": true}' | openssl dgst -sha256 -hmac sua_chave_secreta
SPEC_DIGEST = "865cfcf2a884ce3febc643da65937a7b5b288706cd9a33ad3bab8798a639b994"

WHSEC = "whsec_" + base64.b64encode(bytes(range(32))).decode()
BODY = '{"event":"cliente.criado","timestamp":"2024-01-01T10:00:00Z","data":{"nome":"João"}}'
BODY_BYTES = BODY.encode()
EVENT_ID = "evt_01HZX"


def test_spec_example_signature() -> None:
    assert spec_signature(SPEC_SECRET, SPEC_BODY) == "sha256=" + SPEC_DIGEST


def test_spec_signature_keys_with_the_secret_as_utf8() -> None:
    secret = "segredo-ção"
    expected = hmac.new(secret.encode("utf-8"), BODY_BYTES, hashlib.sha256).hexdigest()
    assert spec_signature(secret, BODY_BYTES) == f"sha256={expected}"


def test_standard_webhooks_reference_vector() -> None:
    # The test vector published with the Standard Webhooks / Svix libraries.
    key = standard_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    assert key is not None
    signature = standard_signature(
        key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


UNPADDED = WHSEC.rstrip("=")  # whsec_AAECAwQF...Hh8, as the integrators wrote it
STANDARD_KEYS: list[tuple[str, bytes]] = [
    (WHSEC, bytes(range(32))),  # a generated secret
    (UNPADDED, bytes(range(32))),  # the same without its '=': the libraries add it
    ("whsec_QUJDZGVm", b"ABCdef"),  # a multiple of 4: no padding either way
    ("whsec_QUJDZGU", b"ABCde"),  # one '=' left out
    ("whsec_QUJDZA", b"ABCd"),  # two '=' left out
    ("whsec_QUJDZA==", b"ABCd"),
    ("whsec_QUJDZA=", b"ABCd"),  # padding begun, not complete: the libraries take it
    ("whsec_QU==", b"A"),  # 4 characters with the padding
    (
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    ),
]
NOT_STANDARD = [
    "sua_chave_secreta",  # the spec's plain secret
    "whsec_",  # prefix only: an empty key
    "whsec_not base64!",  # prefix but not base64
    "whsec_QUJDZA===",  # too much padding
    "whsec_QU=",  # under 4 characters, padding included: JavaScript's decoder refuses it
    "whsec_QUJDZ",  # 5 characters: no base64 text is 1 more than a multiple of 4
    "whsec_QU",  # under 4 characters: JavaScript's decoder refuses it
    "whsec_ab-_cd",  # the URL-safe alphabet
    "WHSEC_" + WHSEC[6:],  # the prefix is case-sensitive
]


@pytest.mark.parametrize(("secret", "expected"), STANDARD_KEYS)
def test_standard_key(secret: str, expected: bytes) -> None:
    assert standard_key(secret) == expected
    assert Webhook(secret)._whsecret == expected  # as the Standard Webhooks package does


@pytest.mark.parametrize("secret", NOT_STANDARD)
def test_not_standard_keys(secret: str) -> None:
    assert standard_key(secret) is None


@pytest.mark.parametrize(("secret", "_"), STANDARD_KEYS)
def test_every_standard_secret_form_verifies_with_the_standardwebhooks_package(
    secret: str, _: bytes
) -> None:
    headers = dict(sign(secret, EVENT_ID, int(time.time()), BODY_BYTES))
    assert "webhook-signature" in headers  # not only X-Webhook-Signature
    Webhook(secret).verify(BODY_BYTES, headers)


def test_sign_with_a_plain_secret_adds_only_the_spec_header() -> None:
    assert sign(SPEC_SECRET, EVENT_ID, 1704103200, SPEC_BODY) == [
        ("X-Webhook-Signature", "sha256=" + SPEC_DIGEST)
    ]


def test_sign_with_an_invalid_whsec_secret_adds_only_the_spec_header() -> None:
    headers = sign("whsec_not base64!", EVENT_ID, 1704103200, BODY_BYTES)
    assert [name for name, _ in headers] == ["X-Webhook-Signature"]


def test_sign_with_a_whsec_secret_adds_standard_headers() -> None:
    headers = dict(sign(WHSEC, EVENT_ID, 1704103200, BODY_BYTES))
    assert set(headers) == {
        "X-Webhook-Signature",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
    # the spec's header keys with the whole secret string, prefix included
    assert headers["X-Webhook-Signature"] == spec_signature(WHSEC, BODY_BYTES)
    assert headers["webhook-id"] == EVENT_ID
    assert headers["webhook-timestamp"] == "1704103200"
    expected = hmac.new(bytes(range(32)), f"{EVENT_ID}.1704103200.".encode() + BODY_BYTES, "sha256")
    assert headers["webhook-signature"] == "v1," + base64.b64encode(expected.digest()).decode()


def test_standard_headers_verify_with_the_standardwebhooks_package() -> None:
    now = int(time.time())
    headers = dict(sign(WHSEC, EVENT_ID, now, BODY_BYTES))
    assert Webhook(WHSEC).verify(BODY_BYTES, headers) == {
        "event": "cliente.criado",
        "timestamp": "2024-01-01T10:00:00Z",
        "data": {"nome": "João"},
    }


@pytest.mark.parametrize(
    ("secret", "body"),
    [
        ("whsec_" + base64.b64encode(bytes(32)).decode(), BODY_BYTES),  # another secret
        (WHSEC, BODY_BYTES.replace(b"Jo", b"Ja")),  # tampered body
        (WHSEC, BODY_BYTES + b" "),  # one byte more
    ],
)
def test_standardwebhooks_package_refuses_wrong_secret_or_body(secret: str, body: bytes) -> None:
    headers = dict(sign(WHSEC, EVENT_ID, int(time.time()), BODY_BYTES))
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers)


@pytest.mark.parametrize(
    ("secret", "body", "signature", "expected"),
    [
        (SPEC_SECRET, SPEC_BODY, "sha256=" + SPEC_DIGEST, True),  # as sent
        (SPEC_SECRET, SPEC_BODY, SPEC_DIGEST, True),  # bare hex
        (SPEC_SECRET, SPEC_BODY, "sha256=" + SPEC_DIGEST.upper(), True),  # uppercase hex
        (SPEC_SECRET, SPEC_BODY, f" sha256={SPEC_DIGEST}\n", True),  # surrounding space
        (SPEC_SECRET, b'{"test":true}', "sha256=" + SPEC_DIGEST, False),  # re-serialised body
        (SPEC_SECRET, b'{"test": false}', "sha256=" + SPEC_DIGEST, False),  # tampered body
        ("outra_chave", SPEC_BODY, "sha256=" + SPEC_DIGEST, False),  # wrong secret
        (SPEC_SECRET, SPEC_BODY, "sha256=" + SPEC_DIGEST[:-1], False),  # truncated
        (SPEC_SECRET, SPEC_BODY, "sha256=", False),  # prefix only
        (SPEC_SECRET, SPEC_BODY, "", False),  # empty header
        (SPEC_SECRET, SPEC_BODY, "sha1=" + SPEC_DIGEST, False),  # another scheme
        (SPEC_SECRET, SPEC_BODY, "sha256=ç" + SPEC_DIGEST[1:], False),  # non-ASCII
    ],
)
def test_verify_spec(secret: str, body: bytes, signature: str, expected: bool) -> None:
    assert verify_spec(secret, body, signature) is expected


def _standard_header(timestamp: int = 1704103200) -> str:
    return dict(sign(WHSEC, EVENT_ID, timestamp, BODY_BYTES))["webhook-signature"]


@pytest.mark.parametrize(
    ("secret", "event_id", "timestamp", "body", "header", "expected"),
    [
        (WHSEC, EVENT_ID, "1704103200", BODY_BYTES, _standard_header(), True),  # as sent
        # one of several space-separated signatures (secret rotation)
        (WHSEC, EVENT_ID, "1704103200", BODY_BYTES, "v1,AAAA " + _standard_header(), True),
        (WHSEC, EVENT_ID, "1704103200", BODY_BYTES + b"x", _standard_header(), False),  # body
        (
            "whsec_" + base64.b64encode(bytes(32)).decode(),
            EVENT_ID,
            "1704103200",
            BODY_BYTES,
            _standard_header(),
            False,
        ),  # wrong secret
        (WHSEC, "evt_other", "1704103200", BODY_BYTES, _standard_header(), False),  # wrong id
        (WHSEC, EVENT_ID, "1704103201", BODY_BYTES, _standard_header(), False),  # wrong time
        (SPEC_SECRET, EVENT_ID, "1704103200", BODY_BYTES, _standard_header(), False),  # plain
        (WHSEC, EVENT_ID, "", BODY_BYTES, _standard_header(), False),  # no timestamp
        (WHSEC, EVENT_ID, "-1", BODY_BYTES, _standard_header(), False),  # negative
        (WHSEC, EVENT_ID, "abc", BODY_BYTES, _standard_header(), False),  # not a number
        (WHSEC, EVENT_ID, "\u00b2", BODY_BYTES, _standard_header(), False),  # "²" isdigit()
        (WHSEC, EVENT_ID, "1704103200", BODY_BYTES, "", False),  # empty header
        (WHSEC, EVENT_ID, "1704103200", BODY_BYTES, "v1,garbage", False),  # not the signature
        # the right digest under another version tag
        (WHSEC, EVENT_ID, "1704103200", BODY_BYTES, "v2," + _standard_header()[3:], False),
    ],
)
def test_verify_standard(
    secret: str, event_id: str, timestamp: str, body: bytes, header: str, expected: bool
) -> None:
    assert verify_standard(secret, event_id, timestamp, body, header) is expected


# -- rotation overlap: the previous secret signs beside the new one ------------------------

OLD = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()


def test_overlap_puts_both_standard_signatures_new_first() -> None:
    now = int(time.time())
    headers = dict(sign(WHSEC, EVENT_ID, now, BODY_BYTES, previous=OLD))
    new_key, old_key = standard_key(WHSEC), standard_key(OLD)
    assert new_key is not None
    assert old_key is not None
    assert headers["webhook-signature"] == " ".join(
        standard_signature(key, EVENT_ID, now, BODY_BYTES) for key in (new_key, old_key)
    )
    assert headers["X-Webhook-Signature"] == spec_signature(WHSEC, BODY_BYTES)  # the new alone
    for secret in (WHSEC, OLD):  # receivers on either secret verify
        Webhook(secret).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(b"x" * 32).decode()).verify(BODY, headers)


def test_overlap_from_a_plain_secret_signs_with_the_new_alone() -> None:
    headers = dict(sign(WHSEC, EVENT_ID, int(time.time()), BODY_BYTES, previous=SPEC_SECRET))
    assert len(headers["webhook-signature"].split()) == 1
    Webhook(WHSEC).verify(BODY, headers)


def test_overlap_to_a_plain_secret_keeps_the_old_standard_signature() -> None:
    headers = dict(sign(SPEC_SECRET, EVENT_ID, 1, BODY_BYTES, previous=WHSEC))
    old_key = standard_key(WHSEC)
    assert old_key is not None
    assert headers["webhook-signature"] == standard_signature(old_key, EVENT_ID, 1, BODY_BYTES)
    assert headers["X-Webhook-Signature"] == spec_signature(SPEC_SECRET, BODY_BYTES)


def test_rotating_to_the_same_secret_signs_once() -> None:
    headers = sign(WHSEC, EVENT_ID, 1, BODY_BYTES, previous=WHSEC, next_secret=WHSEC)
    assert len(dict(headers)["webhook-signature"].split()) == 1
    assert [name for name, _ in headers if name.startswith("X-")] == ["X-Webhook-Signature"]


# -- the spec's scheme during a rotation: one header per secret ------------------------------


def test_the_previous_and_next_secrets_sign_headers_of_their_own() -> None:
    headers = sign(SPEC_SECRET, EVENT_ID, 1, SPEC_BODY, previous="velha", next_secret="nova")
    assert headers == [
        ("X-Webhook-Signature", "sha256=" + SPEC_DIGEST),  # exactly as without a rotation
        ("X-Webhook-Signature-Next", spec_signature("nova", SPEC_BODY)),
        ("X-Webhook-Signature-Previous", spec_signature("velha", SPEC_BODY)),
    ]


def test_webhook_signature_lists_current_next_previous() -> None:
    now = int(time.time())
    headers = dict(sign(WHSEC, EVENT_ID, now, BODY_BYTES, previous=OLD, next_secret=UNPADDED))
    # UNPADDED is WHSEC's key, written without its padding: that key signs once.
    assert len(headers["webhook-signature"].split()) == 2
    assert "X-Webhook-Signature-Next" in headers  # another string: another spec signature
    staged = "whsec_" + base64.b64encode(b"n" * 24).decode()
    headers = dict(sign(WHSEC, EVENT_ID, now, BODY_BYTES, previous=OLD, next_secret=staged))
    keys = [standard_key(s) for s in (WHSEC, staged, OLD)]
    assert headers["webhook-signature"] == " ".join(
        standard_signature(k, EVENT_ID, now, BODY_BYTES) for k in keys if k is not None
    )
    for secret in (WHSEC, staged, OLD):
        Webhook(secret).verify(BODY, headers)
        assert any(
            verify_spec(secret, BODY_BYTES, headers[name])
            for name in headers
            if name.startswith("X-Webhook-Signature")
        )
