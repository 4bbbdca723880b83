"""The console's forms and query strings, read and checked: a 4xx `ApiError` naming the
field for anything malformed, never a 500.

Rules (docs/ARCHITECTURE.md, "Layers"):
- Times in forms are `2024-01-01T10:00` (an `<input type="datetime-local">`), UTC unless
  they say otherwise; RFC 3339 is taken too.
- Forms are `application/x-www-form-urlencoded` in UTF-8 (a 415 or 400 otherwise).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from hookd.api.errors import ApiError
from hookd.api.server import Request
from hookd.domain import views
from hookd.domain.durations import parse_duration

FORM_TYPE = "application/x-www-form-urlencoded"


def form(request: Request) -> dict[str, str]:
    """A POST's form fields (an empty body is an empty form)."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if request.body and media != FORM_TYPE:
        raise ApiError(415, "unsupported_media_type", f"a form must be {FORM_TYPE}")
    try:
        return dict(parse_qsl(request.body.decode(), keep_blank_values=True))
    except UnicodeDecodeError:
        raise ApiError(400, "bad_request", "the form is not UTF-8") from None


def delivery_filters(query: dict[str, str]) -> dict[str, str | float]:
    """The deliveries page's filters as the service takes them (times in Unix seconds)."""
    filters: dict[str, str | float] = {}
    status = query.get("status", "")
    if status:
        if status not in views.DELIVERY_STATUSES:
            raise ApiError(
                400, "bad_request", f"status must be one of {', '.join(views.DELIVERY_STATUSES)}"
            )
        filters["status"] = status
    for name in ("endpoint", "type"):
        if query.get(name, "").strip():
            filters[name] = query[name].strip()
    for name in ("since", "until"):
        moment = form_time(query.get(name, ""), name)
        if moment is not None:
            filters[name] = moment
    return filters


def form_time(text: str, name: str) -> float | None:
    """A time from a form (`2024-01-01T10:00`, UTC unless it says otherwise), or None."""
    text = text.strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(
            400, "bad_request", f"{name} must be a time like 2024-01-01T10:00, got {text[:40]!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def number(text: str, name: str) -> int | None:
    """A cursor or id: None when empty, a 400 naming `name` when not a number."""
    if not text:
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise ApiError(400, "bad_request", f"{name} must be a number, got {text[:40]!r}")
    return int(text)


def delivery_id(params: dict[str, str]) -> int:
    """The delivery id of a page's path (a 400 when it is not a number)."""
    found = number(params["id"], "delivery id")
    assert found is not None  # the route matched a non-empty segment
    return found


def duration(text: str, default: float) -> float:
    """A rotation's overlap ("24h", "30m", seconds); `default` when empty."""
    text = text.strip()
    if not text:
        return default
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ApiError(400, "bad_request", f"overlap: {exc}") from None


def event_list(text: str) -> list[str]:
    """Event patterns given comma- or line-separated."""
    return [name.strip() for name in text.replace("\n", ",").split(",") if name.strip()]


def pretty(data: msgspec.Raw) -> str:
    """Stored JSON, indented for reading."""
    return json_text(json.loads(bytes(data)))


def json_text(value: Any) -> str:
    """A value as indented JSON, non-ASCII kept as is."""
    return json.dumps(value, indent=2, ensure_ascii=False)
