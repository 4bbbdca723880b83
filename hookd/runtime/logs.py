"""Log lines for a terminal or for journald.

Rules: one line per event, `key=value` pairs after a stable `action=` key; under
systemd (when `JOURNAL_STREAM` names our stderr) each line starts with the syslog
priority (`<3>` error, `<4>` warning, `<6>` info, `<7>` debug) so journald files it at
the right level, and the timestamp is left to journald. Secrets never reach a log call.
"""

from __future__ import annotations

import logging
import os
import sys

_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        priority = _PRIORITY.get(record.levelno, 6)
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


def under_journald() -> bool:
    """True when stderr is connected to the journal."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = stream.partition(":")
    if not device or not inode:
        return False
    try:
        info = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return f"{info.st_dev}:{info.st_ino}" == stream


def setup(level: str = "info") -> None:
    """Send hookd's logs to stderr, formatted for journald or a terminal."""
    handler = logging.StreamHandler(sys.stderr)
    if under_journald():
        handler.setFormatter(_JournalFormatter("%(name)s %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("hookd")
    root.handlers[:] = [handler]
    root.propagate = False
    set_level(level)


def set_level(level: str) -> None:
    """Log from `level` up (at start, and at a reload)."""
    logging.getLogger("hookd").setLevel(level.upper())
