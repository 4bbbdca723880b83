"""Tests against a real daemon: real SQLite files, Unix sockets, HTTP receivers on 127.0.0.1."""
