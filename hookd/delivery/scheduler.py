"""The delivery scheduler: what is due, when, and who sends it.

Over 400 lines: the lanes, the loop, the workers and the recorder share the scheduler's
state (tracked ids, timers, the in-flight set); split apart they would pass it around.

Rules:
- The database is the source of truth; the timer set (`domain.timers`) is a cache of what
  is due soon. Each endpoint has a lane that tracks at most LANE_MAX of its pending
  deliveries: every pending delivery of that endpoint whose (due time, id) is at or
  before the lane's cursor is tracked (in the timers, queued for a worker, or in
  flight); the ones after the cursor stay on disk and are loaded by a refill when their
  time comes near (HORIZON). Memory stays flat however large the backlog, and an
  endpoint's backlog never crowds out another endpoint's deliveries.
- New deliveries are attempted at once: the API hands them over after its commit and
  the scheduler wakes. There is no polling interval: the loop sleeps until the next
  deadline (a due delivery, or a lane's refill time) or until woken.
- `delivery.concurrency` caps attempts in flight in total, `per_endpoint_concurrency`
  per endpoint: each lane runs at most that many workers, so a slow or dead endpoint
  holds only its own workers.
- The retry schedule, the limits and `disable_after` can change while running
  (`configure`, at a reload): attempts in flight finish as they were; the next decision
  follows the new schedule; a lane with more workers than a lowered limit lets them go
  as their attempts end.
- A retry tracked after its attempt keeps the job it needs (body, URL, secret) in its
  lane, so it goes out without a read; anything that changes an endpoint drops its lane,
  and a retry through the API drops the kept job. Deliveries erased (their event's
  data subject erased) are forgotten with any job kept or queued for them, a worker
  holding one drops it, and one whose attempt is out is never tracked again, whatever
  its record (written before or after the erasure) says.
- After each attempt the decision (`domain.retry`) and the attempt are written together, by
  one recorder that writes whatever attempts have finished in one transaction while the
  workers go on sending; a delivery stays tracked until its record is on disk, and only
  then is a retry tracked again. A delivery cancelled meanwhile (endpoint disabled or
  deleted) keeps its status: the write is conditional on it still being pending.
- The same transaction counts each attempt into its endpoint's health and per-minute
  statistics, disables an endpoint that answered 410 Gone or failed for
  `delivery.disable_after`, and stores the alerts (`hookd.alerts`) for it and for
  deliveries that ended failed; the recorder then drops that endpoint's lane and
  schedules the alerts' deliveries.
- Each attempt is counted for `GET /metrics` once its record is on disk, and its
  delivery as finished only if that write moved it out of `pending`.
- An attempt hookd cuts short itself (its endpoint disabled or deleted while it was out,
  its event erased, or still out when `shutdown_grace` ran out) is recorded as `interrupted`, saying
  whether the request had gone out. It counts its number (the next attempt carries the
  next `X-Webhook-Attempt`) but not a step of the retry schedule, nor the endpoint's
  health: it says nothing of the receiver.
- Logs: one line per attempt at DEBUG only; failed attempts are summed up per endpoint
  (`delivery.attempt_log`), once a minute of the scheduler's clock and at a stop.
- Stop: no new attempts start; attempts in flight get `shutdown_grace` to finish and be
  recorded, then are cut short and recorded as interrupted; the delivery stays pending,
  due again at the next start (at-least-once). What was sent but not recorded when the
  process dies is attempted again with the same number.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Sequence

import msgspec
import trio

from hookd.db.backend import Backend
from hookd.db.errors import StorageError
from hookd.db.types import Ingested, NewDelivery, Recorded
from hookd.delivery.alerts import Alerts, alert_events
from hookd.delivery.attempt_log import FailureLog, log_attempt
from hookd.delivery.client import Progress, Sender
from hookd.domain import retry
from hookd.domain.attempts import INTERRUPTED, AttemptRecord, Job
from hookd.domain.retry import AttemptResult
from hookd.domain.timers import Timers
from hookd.runtime.clock import Clock
from hookd.runtime.metrics import Metrics

log = logging.getLogger("hookd.delivery")

HORIZON = 60.0  # seconds ahead that a lane loads from disk
LANE_MAX = 10_000  # deliveries a lane tracks at most (~3 MB of ids, timers and jobs)
REFILL_BATCH = 2000  # rows one refill reads at most
LOAD_BATCH = 500  # jobs loaded from disk in one read
WORKER_IDLE = 30.0  # a lane's worker with nothing to do exits after this long
FAILURE_WINDOW = 3600.0  # how far back failed_since() can count
CUT_OFF_RECORD = 2.0  # seconds a stop waits for the records of the attempts it cut short

_BEFORE_ALL = (-math.inf, -1)
_LAST_ID = 2**63 - 1  # the largest SQLite integer


class _Lane:
    """One endpoint's share of the scheduler."""

    def __init__(self, endpoint_id: str) -> None:
        self.endpoint_id = endpoint_id
        self.cursor: tuple[float, int] = _BEFORE_ALL
        self.more = True  # rows after the cursor may be due within the horizon
        self.refill_at = math.inf  # when `more` is False: when to read from disk next
        self.refilling = False
        self.rescan = False
        self.held: list[tuple[int, float]] = []  # tracked during a refill, applied after
        self.tracked: set[int] = set()
        self.retries: dict[int, Job] = {}  # the next attempt of tracked retries, ready to go
        self.ready: deque[Job] = deque()
        self.workers = 0
        self.idle = trio.lowlevel.ParkingLot()
        self.dropped = False

    def refill_time(self) -> float:
        """When this lane should next read from disk (-inf: now, inf: not until woken)."""
        if LANE_MAX - len(self.tracked) < REFILL_BATCH // 4:
            return math.inf  # full: attempts finishing make room, and wake the loop
        return -math.inf if self.more else self.refill_at


class Scheduler:
    """Runs every attempt of every pending delivery."""

    def __init__(
        self,
        store: Backend,
        sender: Sender,
        clock: Clock,
        *,
        schedule: Sequence[float],
        concurrency: int,
        per_endpoint: int,
        metrics: Metrics,
        disable_after: float = 0.0,
        alerts: Alerts | None = None,
    ) -> None:
        self._store = store
        self._alerts = alerts
        self._sender = sender
        self._clock = clock
        self._metrics = metrics
        self._slots = trio.CapacityLimiter(concurrency)
        self._timers: Timers[int] = Timers()
        self._owner: dict[int, _Lane] = {}
        self._lanes: dict[str, _Lane] = {}
        self._wake = trio.Event()
        self._stopping = False
        self._in_flight = 0
        self._sending: set[int] = set()  # sent, or being sent, and not yet recorded
        self._cutters: dict[int, tuple[trio.CancelScope, _Lane]] = {}  # per attempt out
        self._erased_out: set[int] = set()  # erased while their attempt was out
        self._failures: deque[float] = deque()  # when deliveries ended failed, last hour
        self._failure_log = FailureLog()
        self._all_done = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._loop_scope = trio.CancelScope()
        self._to_record, self._recorded = trio.open_memory_channel[
            tuple[_Lane, Job, AttemptRecord]
        ](math.inf)
        self.configure(
            schedule=schedule,
            concurrency=concurrency,
            per_endpoint=per_endpoint,
            disable_after=disable_after,
        )

    def configure(
        self,
        *,
        schedule: Sequence[float],
        concurrency: int,
        per_endpoint: int,
        disable_after: float,
    ) -> None:
        """Take new limits (at start, and at a reload): attempts in flight finish as they
        are; the next decisions follow the new schedule, and workers beyond a lowered
        limit stop after their attempt."""
        self._schedule = tuple(schedule)
        self._slots.total_tokens = concurrency
        self._per_endpoint = per_endpoint
        self._disable_after = disable_after
        if self._stopping:
            return
        for lane in self._lanes.values():  # a raised limit: more workers for what waits
            for _ in range(len(lane.ready)):
                self._add_worker(lane)

    # -- what the API tells the scheduler ----------------------------------------------

    def deliveries_created(self, created: Sequence[NewDelivery]) -> None:
        """Deliveries were committed as due (new ones, or one retried through the API)."""
        for delivery in created:
            lane = self._lane(delivery.endpoint_id)
            lane.retries.pop(delivery.id, None)  # a retry through the API starts a new round
            self._track(lane, delivery.id, delivery.due)
        self._wake.set()

    def endpoint_changed(self, endpoint_id: str, receiving: bool) -> None:
        """An endpoint changed (URL, secret, enabled) or was deleted: start its lane anew.
        When it no longer receives, its attempts in flight are cut short."""
        lane = self._lanes.pop(endpoint_id, None)
        if lane is not None:
            lane.dropped = True
            if not receiving:
                for cutter, owner in self._cutters.values():
                    if owner is lane:
                        cutter.cancel()
            for delivery_id in lane.tracked:
                if self._timers.cancel(delivery_id):
                    del self._owner[delivery_id]
            lane.ready.clear()
            lane.idle.unpark_all()
        self._sender.forget(endpoint_id)
        if receiving:
            self._lane(endpoint_id)
        self._wake.set()

    def deliveries_erased(self, erased: Sequence[tuple[int, str]]) -> None:
        """These (delivery id, endpoint id) were committed `erased`: forget them, and the
        jobs (bodies) kept or queued for them; none of them is attempted again. An attempt
        out is cut short, and its delivery not tracked again even if its record, written
        before the erasure, left it pending."""
        gone: set[int] = set()
        for delivery_id, endpoint_id in erased:
            if delivery_id in self._sending:
                self._erased_out.add(delivery_id)
                if (out := self._cutters.get(delivery_id)) is not None:
                    out[0].cancel()
            lane = self._lanes.get(endpoint_id)
            if lane is None or delivery_id not in lane.tracked:
                continue
            gone.add(delivery_id)
            lane.retries.pop(delivery_id, None)
            if delivery_id not in self._sending:  # one in flight is untracked once recorded
                lane.tracked.discard(delivery_id)
            if self._timers.cancel(delivery_id):
                del self._owner[delivery_id]
        if gone:
            for lane in self._lanes.values():
                if any(job.delivery_id in gone for job in lane.ready):
                    lane.ready = deque(j for j in lane.ready if j.delivery_id not in gone)

    def rescan(self, endpoint_id: str) -> None:
        """Many of an endpoint's deliveries were made due (a replay): reload its lane."""
        lane = self._lane(endpoint_id)
        if lane.refilling:
            lane.rescan = True
        else:
            lane.cursor, lane.more = _BEFORE_ALL, True
        self._wake.set()

    def alerts_stored(
        self, alerts: Sequence[Ingested], disabled: Sequence[tuple[str, str]]
    ) -> None:
        """Alerts were committed with their cause (`disabled`: endpoints, with why):
        log and count them, and deliver them."""
        if self._alerts is not None:
            self.deliveries_created(self._alerts.stored(alerts, disabled))

    def failed_since(self, since: float) -> int:
        """How many deliveries ended `failed` since `since` (at most an hour back)."""
        failures = self._failures
        while failures and failures[0] < since:
            failures.popleft()
        return len(failures)

    # -- running -----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Schedule and send until `stop()`."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for endpoint_id in await self._store.endpoints_with_pending():
                self._lane(endpoint_id)
            nursery.start_soon(self._record)
            nursery.start_soon(self._summarize_failures)
            task_status.started()
            with self._loop_scope:
                await self._loop()

    async def stop(self, grace: float) -> None:
        """Start no new attempt; give those in flight `grace` seconds, then cut them off."""
        self._stopping = True
        self._loop_scope.cancel()
        for lane in self._lanes.values():
            lane.ready.clear()
            lane.idle.unpark_all()
        if self._in_flight:
            with trio.move_on_after(grace):
                await self._all_done.wait()
        if self._in_flight:
            log.warning("action=shutdown.cut_off attempts=%d", self._in_flight)
            for cutter, _ in self._cutters.values():
                cutter.cancel()
            with trio.move_on_after(CUT_OFF_RECORD):
                await self._all_done.wait()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        self._failure_log.flush(self._clock.now(), final=True)

    async def _summarize_failures(self) -> None:
        """Log the failed attempts counted per endpoint, once a summary period."""
        failure_log, clock = self._failure_log, self._clock
        while True:
            due = failure_log.flush(clock.now())
            if due is None:  # nothing counted: sleep until a failure comes (no idle wake-ups)
                failure_log.counting = trio.Event()
                await failure_log.counting.wait()
            else:
                await trio.sleep_until(clock.trio_time(due))

    async def _loop(self) -> None:
        clock = self._clock
        while True:
            try:
                now = clock.now()
                for lane in list(self._lanes.values()):
                    if not lane.refilling and lane.refill_time() <= now:
                        await self._refill(lane, now)
                due = self._timers.pop_due(clock.now(), LOAD_BATCH)
                if due:
                    await self._hand_out(due)
                    continue
            except StorageError as exc:
                log.error("action=storage.failed what=scheduling error=%s retry_in=1s", exc)
                await trio.sleep(1)
                continue
            self._wake = trio.Event()
            deadline = min(
                self._timers.next_deadline() or math.inf,
                min((lane.refill_time() for lane in self._lanes.values()), default=math.inf),
            )
            with trio.move_on_at(clock.trio_time(deadline)):
                await self._wake.wait()

    # -- lanes -------------------------------------------------------------------------

    def _lane(self, endpoint_id: str) -> _Lane:
        lane = self._lanes.get(endpoint_id)
        if lane is None:
            lane = self._lanes[endpoint_id] = _Lane(endpoint_id)
        return lane

    def _track(self, lane: _Lane, delivery_id: int, due: float) -> None:
        if lane.refilling:
            lane.held.append((delivery_id, due))
            return
        if lane.dropped or delivery_id in self._sending:
            return  # an attempt in flight is tracked again, if need be, once recorded
        if delivery_id in lane.tracked:
            if delivery_id in self._timers:  # waiting: made due sooner (or later)
                self._timers.add(delivery_id, due)
            return
        if (due, delivery_id) > lane.cursor:  # on disk; load it when its time comes near
            lane.refill_at = min(lane.refill_at, due - HORIZON / 2)
            return
        if len(lane.tracked) >= LANE_MAX:
            lane.cursor, lane.more = (due, delivery_id - 1), True  # leave it on disk
            return
        lane.tracked.add(delivery_id)
        self._owner[delivery_id] = lane
        self._timers.add(delivery_id, due)

    async def _refill(self, lane: _Lane, now: float) -> None:
        lane.refilling = True
        try:
            limit = min(REFILL_BATCH, LANE_MAX - len(lane.tracked))
            until = now + HORIZON
            rows, later = await self._store.due_rows(lane.endpoint_id, lane.cursor, until, limit)
        finally:
            lane.refilling = False
        for delivery_id, due in rows:
            if delivery_id not in lane.tracked and delivery_id not in self._sending:
                lane.tracked.add(delivery_id)
                self._owner[delivery_id] = lane
                self._timers.add(delivery_id, due)
        if len(rows) == limit:
            lane.cursor, lane.more = (rows[-1][1], rows[-1][0]), True
        else:
            lane.cursor, lane.more = (until, _LAST_ID), False
            lane.refill_at = math.inf if later is None else later - HORIZON / 2
        if lane.rescan:
            lane.cursor, lane.more, lane.rescan = _BEFORE_ALL, True, False
        held, lane.held = lane.held, []
        for delivery_id, due in held:
            self._track(lane, delivery_id, due)

    async def _hand_out(self, due: list[int]) -> None:
        lanes = [self._owner.pop(delivery_id) for delivery_id in due]
        jobs = {
            delivery_id: job
            for delivery_id, lane in zip(due, lanes, strict=True)
            if (job := lane.retries.pop(delivery_id, None)) is not None
        }
        if len(jobs) < len(due):
            try:
                jobs.update(await self._store.load_jobs([d for d in due if d not in jobs]))
            except StorageError:  # put them all back, due again in a second
                again = self._clock.now() + 1
                for delivery_id, lane in zip(due, lanes, strict=True):
                    if delivery_id in jobs:
                        lane.retries[delivery_id] = jobs[delivery_id]
                    self._owner[delivery_id] = lane
                    self._timers.add(delivery_id, again)
                raise
        for delivery_id, lane in zip(due, lanes, strict=True):
            job = jobs.get(delivery_id)
            if job is None or lane.dropped or delivery_id not in lane.tracked:
                lane.tracked.discard(delivery_id)  # finished, cancelled, erased, or gone
                continue
            lane.ready.append(job)
            self._add_worker(lane)

    def _add_worker(self, lane: _Lane) -> None:
        if lane.idle.statistics().tasks_waiting:
            lane.idle.unpark()
        elif lane.workers < self._per_endpoint and self._nursery is not None:
            lane.workers += 1
            self._nursery.start_soon(self._work, lane)

    # -- attempts ----------------------------------------------------------------------

    async def _work(self, lane: _Lane) -> None:
        try:
            while not (self._stopping or lane.dropped or lane.workers > self._per_endpoint):
                if not lane.ready:
                    with trio.move_on_after(WORKER_IDLE) as idle:
                        await lane.idle.park()
                    if idle.cancelled_caught and not lane.ready:
                        return
                    continue
                job = lane.ready.popleft()
                try:  # a free slot is taken without a trip through the run loop
                    self._slots.acquire_nowait()
                except trio.WouldBlock:
                    await self._slots.acquire()
                try:
                    if self._stopping or lane.dropped:
                        return
                    if job.delivery_id in lane.tracked:  # else erased while it waited
                        await self._attempt(lane, job)
                finally:
                    self._slots.release()
        finally:
            lane.workers -= 1
            if lane.ready and not (self._stopping or lane.dropped):
                self._add_worker(lane)  # let go by a lowered limit: another takes its jobs

    async def _attempt(self, lane: _Lane, job: Job) -> None:
        """Send `job` and queue its record; the worker goes on without waiting for disk."""
        clock = self._clock
        self._in_flight += 1
        self._sending.add(job.delivery_id)
        started = clock.now()
        began = trio.current_time()
        progress = Progress()
        cutter = trio.CancelScope()
        self._cutters[job.delivery_id] = (cutter, lane)
        try:
            with cutter:
                result = await self._sender.send(job, progress)
        finally:
            del self._cutters[job.delivery_id]
        if cutter.cancelled_caught:
            if self._stopping:
                why = "hookd stopped"
            elif job.delivery_id in self._erased_out:
                why = "its event was erased"
            else:
                why = "the endpoint was disabled or deleted"
            result = _interrupted(why, progress.sent)
        duration_ms = (trio.current_time() - began) * 1000
        now = clock.now()
        next_at: float | None = now
        status = "pending"  # an interrupted attempt: due again, as it was
        if not cutter.cancelled_caught:
            decision = retry.decide(result, job.round_attempt, self._schedule, now)
            if isinstance(decision, retry.Retry):
                next_at = now + decision.after
            else:
                next_at = None
                status = "succeeded" if isinstance(decision, retry.Delivered) else "failed"
        record = AttemptRecord(
            delivery_id=job.delivery_id,
            endpoint_id=job.endpoint_id,
            event_id=job.event_id,
            event_type=job.event_type,
            number=job.attempt,
            started_at=started,
            duration_ms=duration_ms,
            finished_at=now,
            result=result,
            status=status,
            next_attempt_at=next_at,
            error=None if result.ok else retry.describe(result),
        )
        self._to_record.send_nowait((lane, job, record))

    async def _write_records(self, records: list[AttemptRecord]) -> Recorded:
        """Record attempts; while the disk refuses, log it and try again each second."""
        while True:
            try:
                with trio.CancelScope(shield=True):
                    alert = alert_events if self._alerts is not None else None
                    return await self._store.record_attempts(records, self._disable_after, alert)
            except StorageError as exc:
                log.error("action=storage.failed what=attempts error=%s retry_in=1s", exc)
            await trio.sleep(1)

    async def _record(self) -> None:
        """Write finished attempts in batches; then retry, refill or let go of each."""
        async for first in self._recorded:
            batch = [first]
            while True:
                try:
                    batch.append(self._recorded.receive_nowait())
                except trio.WouldBlock:
                    break
            recorded = await self._write_records([r for _, _, r in batch])
            disabled = dict(recorded.disabled)
            for (lane, job, record), pending in zip(batch, recorded.moved, strict=True):
                lane.tracked.discard(job.delivery_id)
                self._sending.discard(job.delivery_id)
                erased = job.delivery_id in self._erased_out
                self._erased_out.discard(job.delivery_id)
                log_attempt(job, record, pending, disabled.get(job.endpoint_id))
                if not record.result.ok and record.result.error_kind != INTERRUPTED:
                    self._failure_log.add(job.endpoint_id, record)
                finished = record.status if pending and record.status != "pending" else None
                self._metrics.attempt_recorded(
                    job.endpoint_id, record.result, record.duration_ms / 1000, finished
                )
                if pending and record.status == "failed":
                    self._failures.append(record.finished_at)
                    self.failed_since(record.finished_at - FAILURE_WINDOW)
                current = self._lanes.get(job.endpoint_id)  # the lane may have started anew
                retry_at = record.next_attempt_at if pending and not erased else None
                if retry_at is not None and current is not None:
                    self._track(current, job.delivery_id, retry_at)
                    # Keep what the retry needs, unless the endpoint changed (URL, secret)
                    # while this attempt was out: then the job is read afresh when due.
                    if current is lane and job.delivery_id in current.tracked:
                        current.retries[job.delivery_id] = msgspec.structs.replace(
                            job, attempt=job.attempt + 1, round_attempt=job.round_attempt + 1
                        )
                self._in_flight -= 1
            self._wake.set()  # retries to time, or room in lanes with more on disk
            if self._stopping and not self._in_flight:
                self._all_done.set()
            for endpoint_id, _ in recorded.disabled:
                self.endpoint_changed(endpoint_id, receiving=False)
            if recorded.alerts or recorded.disabled:
                self.alerts_stored(recorded.alerts, recorded.disabled)


def _interrupted(why: str, sent: bool) -> AttemptResult:
    if sent:
        error = f"interrupted: {why} after the request went out; the receiver may have it"
    else:
        error = f"interrupted: {why} before the request went out"
    return AttemptResult(error_kind=INTERRUPTED, error=error)
