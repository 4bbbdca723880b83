"""What storage can fail with, as the rest of hookd sees it.

Rules (docs/ARCHITECTURE.md, "Layers"): the storage backends translate their driver's
errors into these, once, where they call the driver; the API answers both with a 503
(never a crash): `ReadError` says the database cannot be read, `StorageError` that it
cannot take the write. They are the one part of `db` the API may import.
"""

from __future__ import annotations


class StorageError(Exception):
    """The database cannot take the write (disk full, file unusable)."""


class ReadError(StorageError):
    """The database cannot be read (a damaged page, an I/O error)."""


class PartlyErased(StorageError):
    """An erasure failed after some of its steps were committed: `erased` holds the
    (delivery id, endpoint id) those ended `erased`, which the scheduler must drop."""

    def __init__(self, message: str, erased: list[tuple[int, str]]) -> None:
        super().__init__(message)
        self.erased = erased
