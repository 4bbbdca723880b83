"""One delivery attempt as data: what it needs (`Job`), and what it came to (`AttemptRecord`).

Rules (docs/ARCHITECTURE.md, "The path of an event"):
- The store builds a `Job` from its rows; the client sends it; the scheduler turns the
  `AttemptResult` into an `AttemptRecord` that the store writes with the decision.
- `attempt` counts every attempt of a delivery (it is `X-Webhook-Attempt`);
  `round_attempt` counts within the current round, for the retry schedule.
- An attempt that hookd cuts short itself has the error kind INTERRUPTED.
"""

from __future__ import annotations

import msgspec

from hookd.domain.endpoints import Secrets
from hookd.domain.retry import AttemptResult

INTERRUPTED = "interrupted"  # the error kind of an attempt cut short by hookd itself


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """Everything one attempt needs, loaded from the database."""

    delivery_id: int
    endpoint_id: str
    url: str
    secrets: Secrets  # which of them sign is decided when the attempt is signed
    event_id: str
    event_type: str
    body: bytes
    attempt: int  # the number of this attempt, counting every round (X-Webhook-Attempt)
    round_attempt: int  # the number of this attempt within its round (for the schedule)


class AttemptRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One attempt as it is logged, and where it leaves its delivery."""

    delivery_id: int
    endpoint_id: str
    event_id: str = ""  # for the alert of a delivery that ends failed
    event_type: str = ""
    number: int
    started_at: float
    duration_ms: float
    finished_at: float
    result: AttemptResult
    status: str  # pending (to retry), succeeded or failed
    next_attempt_at: float | None
    error: str | None  # the delivery's last error, None when it succeeded
