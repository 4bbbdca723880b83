"""The console's words in English and Brazilian Portuguese.

Rules:
- Every key is a pair: English and Portuguese; templates ask for words by key
  and a missing key is an error, never an empty string.
- The language is the browser's (`security.language`): English unless it prefers pt.
"""

from __future__ import annotations

from collections.abc import Callable

WORDS: dict[str, tuple[str, str]] = {  # key -> (English, Portuguese)
    "console": ("hookd console", "Console do hookd"),
    "overview": ("Overview", "Visão geral"),
    "deliveries": ("Deliveries", "Entregas"),
    "delivery": ("Delivery", "Entrega"),
    "endpoints": ("Endpoints", "Endpoints"),
    "endpoint": ("Endpoint", "Endpoint"),
    "events": ("Events", "Eventos"),
    "event": ("Event", "Evento"),
    "catalog": ("Catalog", "Catálogo"),
    "audit": ("Audit", "Auditoria"),
    "sign_in": ("Sign in", "Entrar"),
    "sign_out": ("Sign out", "Sair"),
    "api_token": ("API token", "Token da API"),
    "wrong_token": ("That is not the API token.", "Esse não é o token da API."),
    "status": ("Status", "Situação"),
    "all": ("all", "todas"),
    "event_type": ("Event type", "Tipo de evento"),
    "since": ("Since (UTC)", "Desde (UTC)"),
    "until": ("Until (UTC)", "Até (UTC)"),
    "filter": ("Filter", "Filtrar"),
    "next_page": ("Older", "Mais antigas"),
    "first_page": ("Newest", "Mais recentes"),
    "none": ("Nothing here.", "Nada aqui."),
    "created": ("Created", "Criada"),
    "attempts": ("Attempts", "Tentativas"),
    "last_status": ("Last status", "Último status"),
    "next_attempt": ("Next attempt", "Próxima tentativa"),
    "retry": ("Resend", "Reenviar"),
    "body": ("Body as sent", "Corpo enviado"),
    "headers": ("Headers as sent", "Cabeçalhos enviados"),
    "headers_note": (
        "The signature of the endpoint's current secret; the secret itself is never shown.",
        "A assinatura com o segredo atual do endpoint; o segredo nunca é mostrado.",
    ),
    "timeline": ("Attempts", "Tentativas"),
    "pending": ("pending", "pendente"),
    "succeeded": ("delivered", "entregue"),
    "failed": ("failed", "falhou"),
    "cancelled": ("cancelled", "cancelada"),
    "erased": ("erased", "apagada"),
    "health": ("Health", "Saúde"),
    "success_rate": ("Success", "Sucesso"),
    "latency": ("Latency p50/p95/p99", "Latência p50/p95/p99"),
    "last_hour": ("last hour", "última hora"),
    "last_24h": ("last 24 h", "últimas 24 h"),
    "backlog": ("Backlog", "Fila"),
    "oldest_pending": ("Oldest pending", "Pendente mais antiga"),
    "failures_in_row": ("Failures in a row", "Falhas seguidas"),
    "enabled": ("enabled", "ativo"),
    "disabled": ("disabled", "desativado"),
    "auto_disabled": ("disabled automatically", "desativado automaticamente"),
    "attempts_per_minute": ("Attempts per minute, last hour", "Tentativas por minuto, última hora"),
    "latency_per_minute": (
        "Latency p95 per minute, last hour (ms)",
        "Latência p95 por minuto, última hora (ms)",
    ),
    "recent_alerts": ("Recent alerts", "Alertas recentes"),
    "url": ("URL", "URL"),
    "description": ("Description", "Descrição"),
    "event_filters": (
        "Event types (comma-separated, * allowed)",
        "Tipos de evento (separados por vírgula, * permitido)",
    ),
    "create": ("Create endpoint", "Criar endpoint"),
    "save": ("Save", "Salvar"),
    "enable": ("Enable", "Ativar"),
    "disable": ("Disable", "Desativar"),
    "rotate": ("Rotate secret", "Trocar segredo"),
    "overlap": (
        "Old secret keeps signing for (e.g. 24h)",
        "Segredo antigo assina ainda por (ex.: 24h)",
    ),
    "send_test": ("Send test event", "Enviar evento de teste"),
    "replay": ("Replay since", "Reenviar desde"),
    "replay_status": ("with status", "com situação"),
    "secret_once": (
        "The endpoint's secret, shown this once: copy it now.",
        "O segredo do endpoint, mostrado só desta vez: copie agora.",
    ),
    "test_sent": ("Test event sent", "Evento de teste enviado"),
    "replayed": ("deliveries queued again", "entregas na fila de novo"),
    "saved": ("Saved.", "Salvo."),
    "origin": ("Origin", "Origem"),
    "action": ("Action", "Ação"),
    "fields": ("Fields", "Campos"),
    "at": ("When", "Quando"),
    "received": ("Received", "Recebido"),
    "schema": ("Schema", "Esquema"),
    "example": ("Example", "Exemplo"),
    "send_example": ("Send this example", "Enviar este exemplo"),
    "example_sent": ("Example sent as event", "Exemplo enviado como evento"),
    "error_title": ("That did not work", "Não deu certo"),
    "back": ("Back", "Voltar"),
    "nav": ("Main menu", "Menu principal"),
}

LANGUAGES = ("en", "pt-BR")


def words(language: str) -> Callable[[str], str]:
    """A function giving each key's word in `language` (a KeyError for an unknown key)."""
    index = LANGUAGES.index(language)

    def word(key: str) -> str:
        return WORDS[key][index]

    return word
