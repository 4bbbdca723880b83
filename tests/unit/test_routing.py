"""hookd.domain.routing: subscription patterns against event types."""

from __future__ import annotations

import pytest

from hookd.domain.routing import Router, Subscription, matches, pattern_error


@pytest.mark.parametrize(
    ("pattern", "event_type", "expected"),
    [
        ("cliente.*", "cliente.criado", True),  # a prefix matches its events
        ("cliente.*", "cliente.atualizado", True),
        ("cliente.*", "cliente.endereco.alterado", True),  # at any depth
        ("cliente.*", "cliente", False),  # not the prefix itself
        ("cliente.*", "clientes.criado", False),  # not a longer first segment
        ("cliente.*", "tarefa.criada", False),  # another domain
        ("cliente.*", "xcliente.criado", False),  # the prefix anchors at the start
        ("whatsapp.*", "whatsapp.mensagem.recebida", True),  # deeper names
        ("whatsapp.mensagem.*", "whatsapp.mensagem.recebida", True),  # a two-level prefix
        ("whatsapp.mensagem.*", "whatsapp.status.atualizado", False),  # sibling branch
        ("whatsapp.mensagem.*", "whatsapp.mensagem", False),  # the prefix itself
        ("*", "cliente.criado", True),  # everything
        ("*", "whatsapp.mensagem.recebida", True),
        ("cliente.criado", "cliente.criado", True),  # an exact name
        ("cliente.criado", "cliente.criado.extra", False),  # exact means exact
        ("cliente.criado", "cliente.criad", False),  # no prefix matching
        ("cliente.criado", "cliente.atualizado", False),
        ("tarefa.concluida", "tarefa.concluida", True),
        ("email.enviado", "email.enviados", False),
    ],
)
def test_matches(pattern: str, event_type: str, expected: bool) -> None:
    assert pattern_error(pattern) is None
    assert matches(pattern, event_type) is expected


@pytest.mark.parametrize(
    "pattern",
    [
        "*",  # everything
        "cliente.criado",  # an event name
        "cliente.*",  # a prefix
        "whatsapp.mensagem.*",  # a deeper prefix
        "whatsapp.mensagem.recebida",  # a deeper name
        "tarefa_nova.v2",  # underscores and digits after the first letter
        "a." + "b" * 126,  # 128 characters
    ],
)
def test_pattern_error_accepts(pattern: str) -> None:
    assert pattern_error(pattern) is None


@pytest.mark.parametrize(
    "pattern",
    [
        "",  # empty
        "cliente",  # not dotted: no event has a one-segment name
        "Cliente.criado",  # uppercase
        "cliente.",  # trailing dot
        ".criado",  # leading dot
        "cliente..criado",  # empty segment
        "*.criado",  # wildcards only at the end
        "cliente.*.criado",  # ... and only one
        "cliente.**",  # not a glob
        "cliente*",  # the wildcard is a whole segment
        "**",  # not a glob
        ".*",  # a prefix needs a name
        "cliente.criado ",  # trailing space
        "cliente.*\n",  # trailing newline
        "1cliente.criado",  # segments start with a letter
        "a." + "b" * 127,  # 129 characters
        None,  # not a string
        5,
        ["cliente.*"],
    ],
)
def test_pattern_error_refuses(pattern: object) -> None:
    problem = pattern_error(pattern)
    assert isinstance(problem, str)
    assert "pattern" in problem


ENDPOINTS = [
    Subscription("ep_a", ("cliente.*",)),
    Subscription("ep_b", ("*",), enabled=False),  # disabled: never receives
    Subscription("ep_c", ("tarefa.concluida", "cliente.criado")),
    Subscription("ep_d", ("*",)),
    Subscription("ep_e", ("whatsapp.*",), enabled=False),
    Subscription("ep_f", ("whatsapp.mensagem.recebida",)),
]


@pytest.mark.parametrize(
    ("event_type", "expected"),
    [
        ("cliente.criado", ("ep_a", "ep_c", "ep_d")),  # prefix, exact, all: in order
        ("cliente.atualizado", ("ep_a", "ep_d")),
        ("tarefa.concluida", ("ep_c", "ep_d")),  # second pattern of ep_c
        ("whatsapp.mensagem.recebida", ("ep_d", "ep_f")),  # ep_e is disabled
        ("chamado.aberto", ("ep_d",)),  # only the catch-all
    ],
)
def test_router_returns_enabled_endpoints_in_order(
    event_type: str, expected: tuple[str, ...]
) -> None:
    router = Router(ENDPOINTS)
    assert tuple(router.endpoints_for(event_type)) == expected
    assert tuple(router.endpoints_for(event_type)) == expected  # the cached answer agrees


def test_router_with_no_endpoints() -> None:
    assert tuple(Router([]).endpoints_for("cliente.criado")) == ()


def test_router_with_only_disabled_endpoints() -> None:
    router = Router(s for s in [Subscription("ep_x", ("*",), enabled=False)])
    assert tuple(router.endpoints_for("cliente.criado")) == ()


def test_router_lists_an_endpoint_once_when_several_patterns_match() -> None:
    router = Router([Subscription("ep_a", ("cliente.*", "cliente.criado", "*"))])
    assert tuple(router.endpoints_for("cliente.criado")) == ("ep_a",)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        (None, "a pattern must be a string, got NoneType"),
        (5, "a pattern must be a string, got int"),
        (
            "Cliente",
            "'Cliente' is not a pattern: use an event name like 'cliente.criado', "
            "a prefix like 'cliente.*', or '*'",
        ),
        (  # a long pattern is quoted to 80 characters
            "A" * 200,
            f"{'A' * 80!r} is not a pattern: use an event name like 'cliente.criado', "
            "a prefix like 'cliente.*', or '*'",
        ),
        ("cliente", "'cliente' is not a pattern: event names are dotted, e.g. 'cliente.*'"),
    ],
)
def test_pattern_error_says_what_to_write(pattern: object, message: str) -> None:
    # the API returns these in its 422s: they are what the user reads to fix the pattern
    assert pattern_error(pattern) == message


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("*", False),  # the catch-all is for the CRM's events, not hookd's own alerts
        ("hookd.*", True),  # those go to endpoints that ask for them
        ("hookd.endpoint.disabled", True),
        ("cliente.*", False),
    ],
)
def test_hookd_events_go_only_to_endpoints_that_name_them(pattern: str, expected: bool) -> None:
    assert matches(pattern, "hookd.endpoint.disabled") is expected
    assert Router([Subscription("ep", (pattern,))]).endpoints_for("hookd.endpoint.disabled") == (
        ("ep",) if expected else ()
    )


def test_router_caches_answers_up_to_10000_event_types() -> None:
    router = Router([Subscription("ep", ("*",))])
    first = router.endpoints_for("cliente.criado")
    assert router.endpoints_for("cliente.criado") is first  # the cached tuple itself
    for n in range(9_998):
        router.endpoints_for(f"evento.n{n}")
    last = router.endpoints_for("evento.ultimo")  # the 10,000th type: still cached
    assert router.endpoints_for("evento.ultimo") is last
    # past the bound the answer is computed every time (nothing grows without limit)
    over = router.endpoints_for("evento.alem")
    assert over == ("ep",)
    assert router.endpoints_for("evento.alem") is not over
    assert router.endpoints_for("evento.alem") == ("ep",)
