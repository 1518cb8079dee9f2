"""The dispatcher: one task in every `kennel serve` that fires schedules when they are due.

It sleeps until the earliest due time, or until woken: a schedule made, changed or cancelled in
this process wakes it at once; one made by another process sharing the database is seen within
`KENNEL_SCHEDULE_POLL_SECONDS`. It claims due schedules in batches, in one short transaction
each (on PostgreSQL `FOR UPDATE SKIP LOCKED`, so two processes never claim one row), and in
that transaction moves each on to its next due time and records the firing: the run row and,
through the same path as `POST /api/tasks`, the task and turn. Both ids come from the schedule
and the due time (the task's is `<schedule id>:<due time>`, unique in the organization; the
turn's, which is also its DBOS workflow's id, is derived from the two), so a firing is one task
and one turn however often it is attempted. The turns are queued once the transaction has
committed; a turn whose process died before that is queued at the next start-up, like any turn
whose request died between its commit and its queueing.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
from datetime import datetime

from opentelemetry import trace
from opentelemetry.trace import Span

from kennel.api.errors import ApiError
from kennel.auth import Caller
from kennel.core.causes import transient_cause
from kennel.core.runtime import Runtime
from kennel.core.timestamps import iso_z, utcnow
from kennel.core.tracing import tracer
from kennel.db import Write
from kennel.metrics import record_database_error, record_firing
from kennel.schedules import repository as repo
from kennel.schedules.repository import RunRow, ScheduleRow
from kennel.schedules.schemas import RunOutcome
from kennel.schedules.timing import CATCH_UP_SECONDS, count_due, due_after
from kennel.tasks import repository as tasks_repo
from kennel.tasks.starting import TaskExists, TurnRequest, enqueue_turn, record_turn

__all__ = [
    "BATCH",
    "Dispatcher",
    "fire_due",
    "firing_span",
    "firing_task_id",
    "firing_turn_id",
    "wake",
]

log = logging.getLogger("kennel.schedules")

BATCH = 100  # schedules claimed in one transaction: it holds SQLite's write lock meanwhile
_running: Dispatcher | None = None


def wake() -> None:
    """Have this process's dispatcher look again now (a schedule was made or changed)."""
    if _running is not None:
        _running.wake()


def firing_task_id(schedule_id: str, due: datetime) -> str:
    return f"{schedule_id}:{due.strftime('%Y%m%dT%H%M%S')}.{due.microsecond // 1000:03d}Z"


def firing_span(schedule_id: str, due: datetime | None) -> Span:
    """The span of one firing (a no-op one when traces are off), not yet ended."""
    attributes = {"kennel.schedule_id": schedule_id}
    if due is not None:
        attributes["kennel.schedule.due_at"] = iso_z(due)
    return tracer().start_span("fire schedule", attributes=attributes)


def firing_turn_id(schedule_id: str, due: datetime) -> str:
    digest = hashlib.sha256(firing_task_id(schedule_id, due).encode()).digest()
    body = base64.b32encode(digest).decode().lower().translate(_CROCKFORD)[:26]
    return f"trn_{body}"


# Base32 in Kennel's alphabet (kennel.core.ids): digits and letters without i, l, o and u.
_CROCKFORD = str.maketrans("abcdefghijklmnopqrstuvwxyz234567", "0123456789abcdefghjkmnpqrstvwxyz")


class Dispatcher:
    """A `BackgroundService`: the loop that fires due schedules."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._woken = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        global _running
        _running = self
        self._task = asyncio.create_task(self._run(), name="kennel-schedule-dispatcher")

    async def stop(self) -> None:
        global _running
        if _running is self:
            _running = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def wake(self) -> None:
        self._woken.set()

    async def _run(self) -> None:
        poll = self._rt.settings.schedule_poll_seconds
        while True:
            try:
                if await fire_due(self._rt, utcnow()) >= BATCH:
                    continue  # more are due: no sleep
                async with self._rt.db.read(snapshot=False) as r:
                    earliest = await repo.earliest_due(r)
                wait = poll
                if earliest is not None:
                    wait = min(poll, max(0.0, (earliest - utcnow()).total_seconds()))
            except Exception as exc:  # a database hiccup must not stop every schedule for good
                record_database_error(exc, "dispatcher")
                if cause := transient_cause(exc):
                    log.warning("firing schedules waits: %s; trying again in %s s", cause, poll)
                else:
                    log.exception("firing schedules failed; trying again in %s s", poll)
                wait = poll
            self._woken.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), wait)


async def fire_due(rt: Runtime, now: datetime) -> int:
    """Fire the schedules due at `now` (one batch); how many were claimed. The turns are queued
    in the background, so that the next batch is claimed at once."""
    firings: list[tuple[str, Span]] = []
    spans: list[Span] = []
    runs: list[RunRow] = []
    try:
        async with rt.db.write() as w:
            due = await repo.claim_due(w, now, BATCH)
            for schedule in due:
                # A span per firing, from its claim to its turn's queueing: the turn's own
                # span is its child (`enqueue_turn` carries the context into the workflow).
                span = firing_span(schedule.id, schedule.next_run_at)
                spans.append(span)
                with trace.use_span(span, end_on_exit=False):
                    run, turn_id = await _fire(w, rt, schedule, now)
                runs.append(run)
                span.set_attribute("kennel.schedule.outcome", run.outcome)
                if turn_id is not None:
                    span.set_attribute("kennel.turn_id", turn_id)
                    firings.append((turn_id, span))
    except BaseException:
        for span in spans:
            span.end()  # rolled back: nothing was fired
        raise
    for run in runs:  # committed: counted once
        record_firing(run.outcome, (run.fired_at - run.due_at).total_seconds())
    for span in spans:
        if all(span is not queued for _, queued in firings):
            span.end()  # skipped or failed: nothing to queue
    if firings:
        queueing = asyncio.create_task(_enqueue(rt, firings))
        _queueing.add(queueing)  # held: the loop keeps only weak references to tasks
        queueing.add_done_callback(_queueing.discard)
    return len(due)


_queueing: set[asyncio.Task[None]] = set()


async def _enqueue(rt: Runtime, firings: list[tuple[str, Span]]) -> None:
    for turn_id, span in firings:
        with trace.use_span(span, end_on_exit=True):
            try:
                await enqueue_turn(rt, turn_id)
            except Exception:  # the turn is pending in the database: the next start-up queues it
                log.exception("queueing the turn %s of a schedule failed", turn_id)


async def _fire(
    w: Write, rt: Runtime, schedule: ScheduleRow, now: datetime
) -> tuple[RunRow, str | None]:
    """Record one firing in `w` and move the schedule on; its run, and the turn to queue."""
    due = schedule.next_run_at
    assert due is not None
    zone = rt.settings.schedule_timezone
    later = due_after(schedule, now, default_zone=zone)
    await repo.set_next(w, schedule.id, later, now)
    missed = _missed(schedule, due, now, zone)
    run = RunRow(
        f"run_{firing_turn_id(schedule.id, due)[4:]}",
        schedule.id,
        due,
        now,
        "started",
        None,
        None,
        missed_count=missed,
        fired_by=rt.settings.executor_id,
    )
    if missed:
        log.info(
            "schedule %s: the firing of %s stands for %d later due times up to %s",
            schedule.id,
            iso_z(due),
            missed,
            iso_z(now),
        )
    if (
        later is not None
        and await repo.last_started_task_status(w, schedule.id) in tasks_repo.IN_FLIGHT
    ):
        skipped = run._replace(outcome="skipped_overlap")
        await repo.insert_run(w, skipped)
        log.info("schedule %s: skipped %s, its previous task still runs", schedule.id, iso_z(due))
        return skipped, None
    turn = TurnRequest(
        origin="schedule",
        caller=Caller.acting_for(
            schedule.created_by_user_id, schedule.organization_id, via=f"schedule:{schedule.id}"
        ),
        input=schedule.input,
        worker_id=schedule.worker_id,
        task_id=firing_task_id(schedule.id, due),
        budget=schedule.budget,
        trigger={"scheduleId": schedule.id, "dueAt": iso_z(due)},
        turn_id=firing_turn_id(schedule.id, due),
        new_task_only=True,
    )
    try:
        started = await record_turn(w, rt, turn)
    except ApiError as exc:  # the worker is gone, or its creator may no longer use it
        reason = "This due time has been fired already." if isinstance(exc, TaskExists) else None
        message = reason or exc.message
        failed = run._replace(outcome="failed", error=message)
        await repo.insert_run(w, failed)
        log.warning("schedule %s: firing %s failed: %s", schedule.id, iso_z(due), message)
        return failed, None
    late = (now - due).total_seconds()
    outcome: RunOutcome = "caught_up" if late > CATCH_UP_SECONDS else "started"
    run = run._replace(outcome=outcome, task_id=started.task.id)
    await repo.insert_run(w, run)
    return run, started.turn.id


def _missed(schedule: ScheduleRow, due: datetime, now: datetime, zone: str) -> int:
    """How many later due times, up to `now`, this firing folds in (it fires once for all)."""
    following = due_after(schedule, due, default_zone=zone)
    if following is None or following > now:
        return 0  # the usual case, on time: one look ahead, no count
    return count_due(schedule, due, now, default_zone=zone)
