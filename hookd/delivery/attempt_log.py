"""What is logged about attempts: one DEBUG line each; failed attempts summed up per
endpoint, so that dead endpoints with a large backlog cannot flood the journal.

Rules (docs/ARCHITECTURE.md, "The path of an event"):
- An endpoint's first failure after a quiet period is logged at once; the ones after it
  in one line per endpoint per SUMMARY_PERIOD of the scheduler's clock (counts and the
  last error; WARNING when a delivery ended failed, else INFO); what is left at a stop.
- The caller passes the times in (the records carry them); nothing here reads a clock.
"""

from __future__ import annotations

import logging

import trio

from hookd.domain.attempts import INTERRUPTED, AttemptRecord, Job

log = logging.getLogger("hookd.delivery")

SUMMARY_PERIOD = 60.0  # seconds between two lines about one endpoint's failed attempts


def log_attempt(job: Job, record: AttemptRecord, pending: bool, disabled: str | None) -> None:
    """One attempt's line, at DEBUG (failures are summed up at INFO by `FailureLog`);
    `pending`: the write moved its delivery on, `disabled`: why that write disabled its
    endpoint (the delivery is then cancelled, not retried)."""
    result, status, next_at = record.result, record.status, record.next_attempt_at
    if not log.isEnabledFor(logging.DEBUG):
        return  # the line below is built for every attempt: skip it when nobody reads it
    common = (
        f"delivery={job.delivery_id} endpoint={job.endpoint_id} event={job.event_id} "
        f"attempt={job.attempt} ms={record.duration_ms:.0f}"
    )
    outcome = (
        f"status={result.status_code}"
        if result.status_code is not None
        else f"error={result.error_kind}"
    )
    if status == "succeeded":
        log.debug("action=attempt.succeeded %s %s", common, outcome)
    elif result.error_kind == INTERRUPTED:
        log.debug("action=attempt.interrupted %s reason=%r", common, result.error)
    elif status == "pending" and (disabled is not None or not pending):
        cancelled = (
            f"its endpoint was disabled: {disabled}"
            if disabled is not None
            else "it was no longer pending (endpoint disabled, changed or deleted meanwhile)"
        )
        log.debug("action=delivery.cancelled %s %s reason=%r", common, outcome, cancelled)
    elif status == "failed":
        log.debug("action=delivery.failed %s %s reason=%r", common, outcome, result.error)
    else:
        delay = (next_at or record.finished_at) - record.finished_at
        log.debug("action=attempt.failed %s %s retry_in=%.0fs", common, outcome, delay)


class _Failures:
    """One endpoint's failed attempts since its last line."""

    __slots__ = ("attempts", "ended", "last", "since")

    def __init__(self, since: float) -> None:
        self.since = since
        self.attempts = 0
        self.ended = 0  # deliveries that ended failed
        self.last = ""


class FailureLog:
    """Failed attempts per endpoint, logged in summary (see the module's rules)."""

    def __init__(self) -> None:
        self._endpoints: dict[str, _Failures] = {}
        self.counting = trio.Event()  # set when an endpoint starts being counted

    def add(self, endpoint_id: str, record: AttemptRecord) -> None:
        """Count a failed attempt; log it at once if its endpoint had none for a while."""
        failures = self._endpoints.get(endpoint_id)
        fresh = failures is None
        if failures is None:
            failures = self._endpoints[endpoint_id] = _Failures(record.finished_at)
            self.counting.set()
        failures.attempts += 1
        failures.ended += record.status == "failed"
        failures.last = record.error or ""
        if fresh:
            self._log(endpoint_id, failures, 0.0)
            failures.attempts = failures.ended = 0

    def flush(self, now: float, final: bool = False) -> float | None:
        """Log the endpoints whose period is over at `now` (every one if `final`); when
        the next period ends (None: no endpoint is counted)."""
        for endpoint_id, failures in list(self._endpoints.items()):
            if failures.since + SUMMARY_PERIOD > now and not final:
                continue
            if failures.attempts:
                self._log(endpoint_id, failures, now - failures.since)
                self._endpoints[endpoint_id] = _Failures(now)  # the next period starts
            else:
                del self._endpoints[endpoint_id]  # a quiet period: the next failure is news
        ends = [failures.since + SUMMARY_PERIOD for failures in self._endpoints.values()]
        return min(ends, default=None)

    @staticmethod
    def _log(endpoint_id: str, failures: _Failures, period: float) -> None:
        log.log(
            logging.WARNING if failures.ended else logging.INFO,
            "action=attempts.failed endpoint=%s attempts=%d ended_failed=%d over=%.0fs last=%r",
            endpoint_id,
            failures.attempts,
            failures.ended,
            period,
            failures.last,
        )
