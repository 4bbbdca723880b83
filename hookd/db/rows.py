"""Reading rows off an SQLite cursor: the first one, or a bounded page.

Rules (docs/ARCHITECTURE.md, "Storage"):
- A list page holds at most `limit` rows and about PAGE_BYTES of them (one at least):
  rows are read only until either is reached, so one request's memory stays bounded
  whatever the rows weigh.
- Knows no table: the query modules (events, endpoints, ...) bring the SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import apsw

from hookd.domain import views

T = TypeVar("T")
Row = tuple[Any, ...]

PAGE_BYTES = 8 * 1024 * 1024  # a list page stops growing at about this many bytes


def first(conn: apsw.Connection, query: str, params: Sequence[Any] | dict[str, Any]) -> Row | None:
    """The first row `query` gives, or None."""
    for row in conn.execute(query, params):
        return tuple(row)
    return None


def page(
    rows: Iterable[Row], limit: int, item: Callable[[Row], T], cursor: Callable[[Row], Any]
) -> views.Page[T]:
    """A page of at most `limit` items and about PAGE_BYTES: the rows are read only until
    either is reached (always one at least), and the cursor then points past the last."""
    items: list[T] = []
    size = 0
    for row in rows:
        items.append(item(row))
        size += sum(len(value) for value in row if isinstance(value, str | bytes))
        if len(items) == limit or size >= PAGE_BYTES:
            return views.Page(items, str(cursor(row)))
    return views.Page(items, None)


def newest_first(
    conn: apsw.Connection,
    query: str,
    params: dict[str, Any],
    limit: int,
    before: int | None,
    item: Callable[[Row], T],
) -> views.Page[T]:
    """A page of `query`, which lists rows by id newest first below `:before` (the cursor
    of the previous page, or none) up to `:limit`; its first column is the id."""
    rows = conn.execute(query, {**params, "before": before or 2**62, "limit": limit})
    return page(rows, limit, item, lambda row: row[0])
