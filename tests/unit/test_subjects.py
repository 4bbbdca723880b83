"""domain.subjects: subject fields, normal forms, keyed hashes and selectors (no I/O)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from hookd.domain import subjects
from hookd.domain.catalog import SUBJECT_FIELDS, Catalog, CustomType, custom_error
from hookd.domain.subjects import Hasher, SubjectField, normalise, parse_field

KEY = b"k" * 32


@pytest.mark.parametrize(
    ("kind", "value", "normal"),
    [
        ("email", " Joao@Example.COM ", "joao@example.com"),
        ("email", "a@b", "a@b"),
        ("email", "joao@", None),
        ("email", "@example.com", None),
        ("email", "a@b@c", None),
        ("email", "jo ao@example.com", None),
        ("email", "joao@exa\tmple.com", None),
        ("email", "x" * 310 + "@example.com", None),  # over 320 characters
        ("email", 12, None),
        ("phone", "(11) 99999-9999", "5511999999999"),
        ("phone", "(11) 3333-4444", "551133334444"),
        ("phone", "5511999999999", "5511999999999"),
        ("phone", "+55 (11) 99999-9999", "5511999999999"),
        ("phone", "+1 415 555 0100", "14155550100"),
        ("phone", "0055 11 99999 9999", "5511999999999"),
        ("phone", " 11.99999.9999 ", "5511999999999"),
        ("phone", "12345678", "12345678"),
        ("phone", "1234567", None),
        ("phone", "1" * 16, None),
        ("phone", "11 9999x9999", None),
        ("phone", "55+11999999999", None),
        ("phone", 5511999999999, None),
        ("cliente_id", "cliente_123", "cliente_123"),
        ("cliente_id", " cliente_123", " cliente_123"),  # an id is taken as sent
        ("cliente_id", 123, "123"),
        ("cliente_id", "", None),
        ("cliente_id", "x" * 321, None),
        ("cliente_id", True, None),
        ("cliente_id", None, None),
        ("cliente_id", 1.5, None),
    ],
)
def test_normal_forms(kind: subjects.Kind, value: object, normal: str | None) -> None:
    assert normalise(kind, value) == normal


def test_fields_are_kind_and_path() -> None:
    assert parse_field("email:contato.email") == SubjectField("email", ("contato", "email"))
    assert str(parse_field("phone:telefone")) == "phone:telefone"
    for bad in ("email", "nome:x", "email:", "email:a..b", ":x"):
        with pytest.raises(ValueError, match="must"):
            parse_field(bad)


def test_the_hash_is_hmac_sha256_of_kind_and_normal_form_cut_to_16_bytes() -> None:
    digest = hmac.new(KEY, b"email\x00joao@example.com", hashlib.sha256).digest()[:16]
    assert subjects.subject_hash(KEY, "email", "joao@example.com") == digest
    hasher = Hasher(KEY)
    assert hasher.value_hash("email", " JOAO@example.com") == digest
    assert hasher.value_hash("email", " JOAO@example.com") == digest  # remembered
    assert Hasher(b"x" * 32).value_hash("email", "joao@example.com") != digest
    assert hasher.value_hash("cliente_id", "joao@example.com") != digest  # kind counts
    assert hasher.value_hash("email", "joao") is None
    assert hasher.value_hash("email", {"a": 1}) is None


@pytest.mark.parametrize("key", [b"", b"k" * 32, b"k" * 64, b"k" * 65, bytes(range(200))])
def test_the_hasher_is_hmac_whatever_the_key_length(key: bytes) -> None:
    digest = hmac.new(key, b"phone\x005511999999999", hashlib.sha256).digest()[:16]
    assert Hasher(key).value_hash("phone", "(11) 99999-9999") == digest


def test_a_remembered_true_is_not_taken_for_1() -> None:
    hasher = Hasher(KEY)
    assert hasher.value_hash("cliente_id", True) is None
    assert hasher.value_hash("cliente_id", 1) == subjects.subject_hash(KEY, "cliente_id", "1")


def test_a_hasher_forgets_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subjects, "REMEMBERED", 2)
    hasher = Hasher(KEY)
    for n in range(5):
        assert hasher.value_hash("cliente_id", f"c{n}") == subjects.subject_hash(
            KEY, "cliente_id", f"c{n}"
        )
        assert len(hasher._known["cliente_id"]) <= 2  # never more than REMEMBERED


def test_event_hashes_follow_the_fields_and_drop_repeats() -> None:
    fields = Catalog().subject_fields("cliente.atualizado")
    data = {
        "id": "cliente_123",
        "email": "joao@example.com",
        "telefone": "(11) 99999-9999",
        "alteracoes": {
            "email": {"anterior": "JOAO@example.com", "novo": "joao.novo@example.com"},
            "telefone": {"anterior": "5511888888888", "novo": "(11) 99999-9999"},
        },
    }
    hashes = Hasher(KEY).event_hashes(fields, data)
    expected = [
        subjects.subject_hash(KEY, "cliente_id", "cliente_123"),
        subjects.subject_hash(KEY, "email", "joao@example.com"),
        subjects.subject_hash(KEY, "phone", "5511999999999"),
        subjects.subject_hash(KEY, "email", "joao.novo@example.com"),
        subjects.subject_hash(KEY, "phone", "5511888888888"),
    ]
    assert list(hashes) == expected
    assert Hasher(KEY).event_hashes(fields, {"id": "c", "alteracoes": "x"}) == (
        subjects.subject_hash(KEY, "cliente_id", "c"),
    )


def test_selectors_are_normalised_and_checked() -> None:
    chosen = subjects.selectors({"phone": "(11) 99999-9999", "email": "A@B.c"})
    assert chosen == [("email", "a@b.c"), ("phone", "5511999999999")]
    assert subjects.selector_hashes(KEY, chosen)[0] == subjects.subject_hash(KEY, "email", "a@b.c")
    with pytest.raises(ValueError, match="at least one"):
        subjects.selectors({})
    with pytest.raises(ValueError, match=r"^phone: .12. is not a valid phone"):
        subjects.selectors({"email": "a@b", "phone": "12"})
    with pytest.raises(ValueError, match=r"^cliente_id"):
        subjects.selectors({"cliente_id": ""})


def test_every_spec_type_names_its_subject_fields() -> None:
    catalog = Catalog()
    spec = [kind.name for kind in catalog.types() if kind.source == "spec"]
    assert sorted(SUBJECT_FIELDS) == sorted(spec)
    assert catalog.get("email.enviado").subject_fields == [  # type: ignore[union-attr]
        "cliente_id:clienteId",
        "email:destinatario",
    ]
    assert catalog.subject_fields("hookd.teste") == ()
    assert catalog.subject_fields("nada.disso") == ()


def test_operator_types_name_theirs() -> None:
    own = CustomType(name="pedido.criado", subject_fields=["email:contato.email"])
    catalog = Catalog([own])
    assert catalog.subject_fields("pedido.criado") == (SubjectField("email", ("contato", "email")),)
    assert catalog.get("pedido.criado").subject_fields == ["email:contato.email"]  # type: ignore[union-attr]
    bad = CustomType(name="pedido.criado", subject_fields=["nome:x"])
    assert custom_error(bad) == (
        "subject_fields[0]: 'nome:x' must be 'KIND:path' with KIND one of cliente_id, email, phone"
    )


def test_limits_and_odd_text_of_values() -> None:
    assert subjects.normalise("cliente_id", "c" * 320) == "c" * 320  # the longest kept
    assert subjects.normalise("cliente_id", "c" * 321) is None
    assert subjects.normalise("email", "\tjoao@example.com") is None  # only spaces around
    lone = "cliente_\ud800"  # a lone surrogate, as JSON may carry one
    assert Hasher(KEY).value_hash("cliente_id", lone) == subjects.subject_hash(
        KEY, "cliente_id", lone
    )
    assert parse_field("phone:contato:celular") == SubjectField("phone", ("contato:celular",))


def test_boundaries_and_messages_word_for_word() -> None:
    assert subjects.normalise("phone", " +1 555 123 4567") == "15551234567"  # + after spaces
    email = "a" * 300 + "@" + "b" * 19  # 320 characters: the longest kept
    assert subjects.normalise("email", email) == email
    assert subjects.normalise("email", "Xavier@example.COM") == "xavier@example.com"
    assert str(parse_field("email:contato.email")) == "email:contato.email"
    with pytest.raises(ValueError, match="give at least one") as none:
        subjects.selectors({})
    assert str(none.value) == "give at least one of cliente_id, email, phone"
    with pytest.raises(ValueError, match="is not a valid e-mail") as long:
        subjects.selectors({"email": "x" * 100})
    assert str(long.value) == f"email: {'x' * 80!r} is not a valid e-mail address"
