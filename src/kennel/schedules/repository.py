"""The only code that queries schedules and their firings."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy import bindparam, func, select

from kennel.core.timestamps import utcnow
from kennel.db import Read, Write, row_columns, select_rows
from kennel.models import schedule_runs, schedules, tasks
from kennel.schedules.schemas import RunOutcome, ScheduleKind
from kennel.tasks.schemas import Budget, TaskStatus

__all__ = [
    "RunRow",
    "RunView",
    "ScheduleRow",
    "active_of_worker",
    "cancel",
    "cancel_all_of_worker",
    "claim_due",
    "count_active",
    "count_finished",
    "earliest_due",
    "finished_of_worker",
    "insert",
    "insert_run",
    "last_started_task_status",
    "page_of_runs",
    "schedule",
    "set_next",
    "set_paused",
]


class ScheduleRow(NamedTuple):
    id: str
    worker_id: str
    organization_id: str
    created_by_user_id: str
    kind: ScheduleKind
    input: str
    budget: Budget
    delay_seconds: int | None
    cron: str | None
    timezone: str | None
    interval_seconds: int | None
    anchor: datetime
    next_run_at: datetime | None
    paused: bool
    last_run_at: datetime | None
    created_at: datetime
    cancelled_at: datetime | None


class RunRow(NamedTuple):
    id: str
    schedule_id: str
    due_at: datetime
    fired_at: datetime
    outcome: RunOutcome
    task_id: str | None
    error: str | None
    # Later due times this firing stood for (missed in downtime or during an overlap).
    missed_count: int = 0
    fired_by: str | None = None  # the executor id of the process that fired it


class RunView(NamedTuple):
    """A firing, with the API id and status of the task it started."""

    id: str
    schedule_id: str
    due_at: datetime
    fired_at: datetime
    outcome: RunOutcome
    task_id: str | None
    error: str | None
    missed_count: int
    fired_by: str | None
    task_public_id: str | None
    task_status: TaskStatus | None


_SELECT = select_rows(ScheduleRow, schedules)
_ACTIVE = schedules.c.cancelled_at.is_(None) & schedules.c.next_run_at.is_not(None)
_EARLIEST = select(func.min(schedules.c.next_run_at)).where(_ACTIVE, schedules.c.paused.is_(False))
_DUE = (
    _SELECT.where(
        _ACTIVE, schedules.c.paused.is_(False), schedules.c.next_run_at <= bindparam("now")
    )
    .order_by(schedules.c.next_run_at)
    .limit(bindparam("limit"))
    # PostgreSQL: two processes never claim one row, and neither waits for the other's rows.
    .with_for_update(skip_locked=True)
)
_LAST_STARTED = (
    select(tasks.c.status)
    .select_from(schedule_runs.join(tasks, tasks.c.id == schedule_runs.c.task_id))
    .where(schedule_runs.c.schedule_id == bindparam("schedule_id"))
    .order_by(schedule_runs.c.fired_at.desc())
    .limit(1)
)


async def insert(w: Write, row: ScheduleRow) -> None:
    await w.execute(sa.insert(schedules), row._asdict())


async def schedule(
    r: Read, worker_id: str, schedule_id: str, *, finished: bool = False
) -> ScheduleRow | None:
    """The worker's schedule of that id, unless it is cancelled or a one-shot that has fired
    (`finished`: those too, for their history)."""
    live = sa.true() if finished else _ACTIVE
    row = await r.first(
        _SELECT.where(schedules.c.id == schedule_id, schedules.c.worker_id == worker_id, live)
    )
    return ScheduleRow._make(row) if row else None


async def active_of_worker(r: Read, worker_id: str) -> list[ScheduleRow]:
    """The worker's schedules that will fire again, soonest first."""
    rows = await r.all(
        _SELECT.where(schedules.c.worker_id == worker_id, _ACTIVE).order_by(
            schedules.c.next_run_at, schedules.c.id
        )
    )
    return [ScheduleRow._make(row) for row in rows]


async def finished_of_worker(r: Read, worker_id: str, *, limit: int) -> list[ScheduleRow]:
    """The worker's schedules that will not fire again (cancelled, or one-shots that fired),
    the latest to end first."""
    ended = func.coalesce(schedules.c.cancelled_at, schedules.c.last_run_at, schedules.c.created_at)
    rows = await r.all(
        _SELECT.where(schedules.c.worker_id == worker_id, ~_ACTIVE)
        .order_by(ended.desc(), schedules.c.id.desc())
        .limit(limit)
    )
    return [ScheduleRow._make(row) for row in rows]


async def count_finished(r: Read, worker_id: str) -> int:
    query = select(func.count()).where(schedules.c.worker_id == worker_id, ~_ACTIVE)
    return int(await r.scalar(query))


async def count_active(r: Read, worker_id: str) -> int:
    query = select(func.count()).where(schedules.c.worker_id == worker_id, _ACTIVE)
    return int(await r.scalar(query))


async def cancel(w: Write, schedule_id: str) -> bool:
    statement = (
        sa.update(schedules)
        .where(schedules.c.id == schedule_id, schedules.c.cancelled_at.is_(None))
        .values(cancelled_at=utcnow(), next_run_at=None)
    )
    return bool(await w.execute(statement))


async def cancel_all_of_worker(w: Write, worker_id: str) -> int:
    statement = (
        sa.update(schedules)
        .where(schedules.c.worker_id == worker_id, schedules.c.cancelled_at.is_(None))
        .values(cancelled_at=utcnow(), next_run_at=None)
    )
    return await w.execute(statement)


async def set_paused(w: Write, schedule_id: str, paused: bool, next_run_at: datetime) -> None:
    await w.execute(
        sa.update(schedules)
        .where(schedules.c.id == schedule_id)
        .values(paused=paused, next_run_at=next_run_at)
    )


async def earliest_due(r: Read) -> datetime | None:
    """When the next schedule of any worker is due (not paused)."""
    value: datetime | None = await r.scalar(_EARLIEST)  # min() keeps the column's type
    return value


async def claim_due(w: Write, now: datetime, limit: int) -> list[ScheduleRow]:
    """Due schedules, locked for this transaction (the caller moves them on in it)."""
    rows = await w.all(_DUE, {"now": now, "limit": limit})
    return [ScheduleRow._make(row) for row in rows]


async def set_next(
    w: Write, schedule_id: str, next_run_at: datetime | None, last_run_at: datetime
) -> None:
    await w.execute(
        sa.update(schedules)
        .where(schedules.c.id == schedule_id)
        .values(next_run_at=next_run_at, last_run_at=last_run_at)
    )


async def insert_run(w: Write, row: RunRow) -> None:
    await w.execute(sa.insert(schedule_runs), row._asdict())


async def last_started_task_status(r: Read, schedule_id: str) -> str | None:
    """The status of the task the schedule's latest firing started, if it started one."""
    value = await r.scalar(_LAST_STARTED, {"schedule_id": schedule_id})
    return str(value) if value is not None else None


async def page_of_runs(
    r: Read, schedule_id: str, *, page: int, size: int
) -> tuple[list[RunView], int]:
    where = schedule_runs.c.schedule_id == schedule_id
    total = await r.scalar(select(func.count()).where(where))
    rows = await r.all(
        select(*row_columns(RunRow, schedule_runs), tasks.c.public_id, tasks.c.status)
        .select_from(schedule_runs.outerjoin(tasks, tasks.c.id == schedule_runs.c.task_id))
        .where(where)
        .order_by(schedule_runs.c.fired_at.desc(), schedule_runs.c.id.desc())
        .offset((page - 1) * size)
        .limit(size)
    )
    return [RunView._make(row) for row in rows], int(total or 0)
