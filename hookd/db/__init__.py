"""Storage: the SQLite engine, schema and queries behind the backend seam (docs/ARCHITECTURE.md)."""
