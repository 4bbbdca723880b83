"""The HTTP API: server, routes, handlers, OpenAPI (docs/ARCHITECTURE.md)."""
