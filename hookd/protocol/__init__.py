"""Wire protocols without I/O: HTTP/1.1 framing (docs/ARCHITECTURE.md)."""
