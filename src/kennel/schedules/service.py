"""Decisions about schedules: what may be scheduled, when it is due, pausing, firing now."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from kennel.api.errors import BadRequest, Conflict, NotFound
from kennel.auth import Caller
from kennel.core.ids import new_id
from kennel.core.parsers import parse_timezone
from kennel.core.runtime import Runtime
from kennel.core.timestamps import iso_z, utcnow
from kennel.db import Write
from kennel.schedules import repository as repo
from kennel.schedules import timing
from kennel.schedules.dispatcher import wake
from kennel.schedules.repository import RunRow, RunView, ScheduleRow
from kennel.schedules.schemas import Cron, Delayed, Interval, ScheduleCreate, Scheduled
from kennel.schedules.timing import due_after, next_due, parse_cron
from kennel.tasks.starting import StartedTurn, TurnRequest, enqueue_turn, record_turn
from kennel.workers import service as workers_service
from kennel.workers.events import on_worker_deleted

__all__ = [
    "RUNS_PAGE_SIZE",
    "cancel_schedule",
    "create_schedule",
    "get_schedule",
    "list_finished_schedules",
    "list_runs",
    "list_schedules",
    "preview_schedule",
    "run_now",
    "set_paused",
    "upcoming_of",
    "zone_of",
]

RUNS_PAGE_SIZE = 20


def zone_of(rt: Runtime, row: ScheduleRow) -> str:
    return row.timezone or rt.settings.schedule_timezone


def upcoming_of(rt: Runtime, row: ScheduleRow, count: int = 5) -> list[datetime]:
    """The schedule's next `count` due times."""
    return timing.upcoming_of(row, default_zone=rt.settings.schedule_timezone, count=count)


def _first_due(rt: Runtime, data: ScheduleCreate, now: datetime) -> tuple[datetime, dict[str, Any]]:
    """The first due time and the kind's own columns; a 400 naming the field at fault."""
    when = data.when
    if isinstance(when, Scheduled):
        if when.date <= now:
            raise BadRequest("when.date lies in the past.", param="when.date")
        return when.date, {}
    if isinstance(when, Delayed):
        return now + timedelta(seconds=when.delay_in_seconds), {
            "delay_seconds": when.delay_in_seconds
        }
    if isinstance(when, Interval):
        minimum = rt.settings.min_interval_seconds
        if when.interval_seconds < minimum:
            raise BadRequest(
                f"when.intervalSeconds must be at least {minimum} (KENNEL_MIN_INTERVAL_SECONDS).",
                param="when.intervalSeconds",
            )
        return now + timedelta(seconds=when.interval_seconds), {
            "interval_seconds": when.interval_seconds
        }
    assert isinstance(when, Cron)
    try:
        expression = parse_cron(when.cron)
    except ValueError as exc:
        raise BadRequest(f"when.cron {exc}.", param="when.cron") from None
    try:
        zone = parse_timezone(when.timezone or rt.settings.schedule_timezone)
    except ValueError as exc:
        raise BadRequest(f"when.timezone: {exc}.", param="when.timezone") from None
    first = next_due("cron", after=now, cron=expression, zone=zone)
    assert first is not None
    return first, {"cron": expression, "timezone": when.timezone}


def _new_row(
    rt: Runtime, caller: Caller, worker_id: str, data: ScheduleCreate, now: datetime
) -> ScheduleRow:
    """The schedule `data` makes if created at `now`; a 400 naming the field at fault."""
    first, columns = _first_due(rt, data, now)
    return ScheduleRow(
        id=new_id("sch"),
        worker_id=worker_id,
        organization_id=caller.organization_id,
        created_by_user_id=caller.user_id,
        kind=data.when.type,
        input=data.input,
        budget=data.budget,
        delay_seconds=columns.get("delay_seconds"),
        cron=columns.get("cron"),
        timezone=columns.get("timezone"),
        interval_seconds=columns.get("interval_seconds"),
        anchor=now if data.when.type == "interval" else first,
        next_run_at=first,
        paused=False,
        last_run_at=None,
        created_at=now,
        cancelled_at=None,
    )


async def create_schedule(
    rt: Runtime, caller: Caller, worker_id: str, data: ScheduleCreate
) -> ScheduleRow:
    row = _new_row(rt, caller, worker_id, data, utcnow())
    async with rt.db.write() as w:
        worker = await workers_service.visible_worker(w, caller, worker_id)
        limit = rt.settings.max_schedules_per_worker
        if await repo.count_active(w, worker.id) >= limit:
            raise Conflict(
                f"Worker {worker.id!r} has {limit} schedules already, the most it may have "
                "(KENNEL_MAX_SCHEDULES_PER_WORKER); cancel one first."
            )
        await repo.insert(w, row._replace(worker_id=worker.id))
    wake()
    return row


async def preview_schedule(
    rt: Runtime, caller: Caller, worker_id: str, data: ScheduleCreate, count: int = 5
) -> list[datetime]:
    """The first `count` due times `data` would have if it were created now; nothing is saved."""
    async with rt.db.read() as r:
        await workers_service.visible_worker(r, caller, worker_id)
    return upcoming_of(rt, _new_row(rt, caller, worker_id, data, utcnow()), count)


async def list_schedules(rt: Runtime, caller: Caller, worker_id: str) -> list[ScheduleRow]:
    async with rt.db.read() as r:
        worker = await workers_service.visible_worker(r, caller, worker_id)
        return await repo.active_of_worker(r, worker.id)


async def list_finished_schedules(
    rt: Runtime, caller: Caller, worker_id: str, *, limit: int
) -> tuple[list[ScheduleRow], int]:
    """The worker's schedules that ended (cancelled, or one-shots that fired), the latest
    first, and how many there are: their runs stay readable."""
    async with rt.db.read() as r:
        worker = await workers_service.visible_worker(r, caller, worker_id)
        rows = await repo.finished_of_worker(r, worker.id, limit=limit)
        return rows, await repo.count_finished(r, worker.id)


async def get_schedule(
    rt: Runtime, caller: Caller, worker_id: str, schedule_id: str
) -> ScheduleRow:
    async with rt.db.read() as r:
        return await _visible(r, caller, worker_id, schedule_id)


async def _visible(
    r: Any, caller: Caller, worker_id: str, schedule_id: str, *, finished: bool = False
) -> ScheduleRow:
    worker = await workers_service.visible_worker(r, caller, worker_id)
    found = await repo.schedule(r, worker.id, schedule_id, finished=finished)
    if found is None:
        raise NotFound("schedule", schedule_id)
    return found


async def cancel_schedule(rt: Runtime, caller: Caller, worker_id: str, schedule_id: str) -> None:
    """Cancel it; a task it already started goes on."""
    async with rt.db.write() as w:
        found = await _visible(w, caller, worker_id, schedule_id)
        await repo.cancel(w, found.id)
    wake()


async def set_paused(
    rt: Runtime, caller: Caller, worker_id: str, schedule_id: str, paused: bool
) -> ScheduleRow:
    """Pause (it keeps its place) or resume (from its next due time after now: what it skipped
    while paused is not replayed; a one-shot whose time passed fires at once)."""
    now = utcnow()
    async with rt.db.write() as w:
        found = await _visible(w, caller, worker_id, schedule_id)
        assert found.next_run_at is not None
        next_run_at = found.next_run_at
        if not paused and found.paused and next_run_at <= now:
            later = due_after(found, now, default_zone=rt.settings.schedule_timezone)
            next_run_at = later or now
        await repo.set_paused(w, found.id, paused, next_run_at)
    wake()
    return found._replace(paused=paused, next_run_at=next_run_at)


async def run_now(
    rt: Runtime, caller: Caller, worker_id: str, schedule_id: str
) -> tuple[RunRow, StartedTurn]:
    """Fire once now, through the same path as `POST /api/tasks`, recorded as `manual`."""
    now = utcnow()
    async with rt.db.read() as r:
        found = await _visible(r, caller, worker_id, schedule_id)
    turn = TurnRequest(
        origin="schedule",
        caller=caller,
        input=found.input,
        worker_id=found.worker_id,
        budget=found.budget,
        trigger={"scheduleId": found.id, "dueAt": iso_z(now), "manual": True},
    )
    async with rt.db.write() as w:
        started = await record_turn(w, rt, turn)
        run = RunRow(
            new_id("run"),
            found.id,
            now,
            now,
            "manual",
            started.task.id,
            None,
            fired_by=rt.settings.executor_id,
        )
        await repo.insert_run(w, run)
    await enqueue_turn(rt, started.turn.id)
    return run, started


async def list_runs(
    rt: Runtime, caller: Caller, worker_id: str, schedule_id: str, *, page: int
) -> tuple[list[RunView], int]:
    async with rt.db.read() as r:
        found = await _visible(r, caller, worker_id, schedule_id, finished=True)
        rows, total = await repo.page_of_runs(r, found.id, page=page, size=RUNS_PAGE_SIZE)
    return rows, total


async def _cancel_schedules_of_deleted(w: Write, worker_id: str) -> None:
    await repo.cancel_all_of_worker(w, worker_id)


on_worker_deleted("schedules", _cancel_schedules_of_deleted)
