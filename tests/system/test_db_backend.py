"""The storage seam: `SqliteBackend` offers exactly the operations of `Backend`, with
the same signatures, and the db package reaches no layer above it."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import hookd.db
from hookd.db.backend import Backend
from hookd.db.sqlite import SqliteBackend

ABOVE_DB = ("hookd.delivery", "hookd.api", "hookd.cli", "hookd.runtime", "hookd.service")


def _operations(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(cls).items()
        if not name.startswith("_") and inspect.iscoroutinefunction(member)
    }


def test_sqlite_backend_has_every_operation_of_backend_with_its_signature() -> None:
    declared = _operations(Backend)
    assert len(declared) >= 29
    assert _operations(SqliteBackend) == declared


def test_db_imports_nothing_above_it() -> None:
    package = Path(hookd.db.__file__).parent
    found = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            found += [f"{path.name}: {n}" for n in names if n.startswith(ABOVE_DB)]
    assert found == []
