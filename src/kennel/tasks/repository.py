"""The only code that queries tasks, turns and the files turns published."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy import bindparam, func, select

from kennel.auth import Caller
from kennel.core.timestamps import utcnow
from kennel.db import Read, Write, row_columns, select_rows
from kennel.models import tasks, turn_files, turns, workers
from kennel.tasks.schemas import Budget, TaskStatus, TriggeredBy
from kennel.workers.repository import VISIBLE_TO_CALLER, WorkerRow, caller_params
from kennel.workspaces import repository as workspaces_repo

__all__ = [
    "IN_FLIGHT",
    "TaskRow",
    "TurnEnd",
    "TurnFileRow",
    "TurnRow",
    "WorkerLatestTask",
    "archive",
    "by_id",
    "by_public_id",
    "claim_for_turn",
    "end_of",
    "files_of_task",
    "finish_turn",
    "in_flight_turn_ids",
    "insert_files",
    "insert_task",
    "insert_turn",
    "latest_of_worker",
    "merge_trigger",
    "page_visible",
    "pending_turn_ids",
    "record_file",
    "running_turn_ids",
    "start_turn",
    "task_and_turns",
    "turn",
    "turns_of",
    "visible",
    "visible_of_worker",
    "visible_worker_latest_task_and_turns",
]

IN_FLIGHT = ("pending", "running")


class TaskRow(NamedTuple):
    id: str
    public_id: str
    organization_id: str
    worker_id: str
    created_by_user_id: str | None
    title: str
    status: TaskStatus
    triggered_by: TriggeredBy
    instructions_version: int
    active_turn_id: str | None
    turn_count: int
    credits: int
    duration_ms: int
    trigger: dict[str, Any] | None
    created_at: datetime
    last_turn_at: datetime
    completed_at: datetime | None
    archived_at: datetime | None


class TurnRow(NamedTuple):
    id: str
    task_id: str
    seq: int
    input: str
    budget: Budget
    status: TaskStatus
    instructions_version: int
    output_text: str
    structured_output: dict[str, Any] | None
    messages: list[Any]
    sources: list[Any]
    input_tokens: int
    output_tokens: int
    requests: int
    credits: int
    duration_ms: int
    error_code: str | None
    error_message: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    notices: list[dict[str, str]]


class TurnEnd(NamedTuple):
    status: TaskStatus
    listeners: list[str]  # empty until it ended


class TurnFileRow(NamedTuple):
    turn_id: str
    path: str
    media_type: str
    size: int
    created_at: datetime


# Built once: they run on every worker and task read, and on every turn.
_TASKS = select_rows(TaskRow, tasks)
_BY_ID = _TASKS.where(tasks.c.id == bindparam("task_id"))
_BY_PUBLIC_ID = _TASKS.where(
    tasks.c.organization_id == bindparam("organization_id"),
    tasks.c.public_id == bindparam("public_id"),
)
_VISIBLE = (
    _TASKS.join(workers, workers.c.id == tasks.c.worker_id)
    .where(tasks.c.public_id == bindparam("public_id"), VISIBLE_TO_CALLER)
    .where(tasks.c.organization_id == bindparam("caller_organization_id"))
)
_LATEST_OF_WORKER = (
    _TASKS.where(tasks.c.worker_id == bindparam("worker_id"))
    .order_by(tasks.c.last_turn_at.desc(), tasks.c.id.desc())
    .limit(1)
)
_LATEST = tasks.alias("latest")
# The worker and its latest task in one statement: the request clients poll most.
# One statement, so that the worker, its task and the task's turns are of one moment without a
# snapshot's BEGIN and ROLLBACK round trips: a row per turn (one with no turn, or no task).
# Whether the worker has workspace files rides along (an index probe): most have none, and
# those need no listing.
_VISIBLE_WORKER_LATEST_TASK_AND_TURNS = (
    select(
        *row_columns(WorkerRow, workers),
        workspaces_repo.has_files(workers.c.id),
        *row_columns(TaskRow, tasks),
        *row_columns(TurnRow, turns),
    )
    .select_from(
        workers.outerjoin(
            tasks,
            tasks.c.id
            == select(_LATEST.c.id)
            .where(_LATEST.c.worker_id == workers.c.id)
            .order_by(_LATEST.c.last_turn_at.desc(), _LATEST.c.id.desc())
            .limit(1)
            .correlate(workers)
            .scalar_subquery(),
        ).outerjoin(turns, turns.c.task_id == tasks.c.id)
    )
    .where(workers.c.id == bindparam("worker_id"), VISIBLE_TO_CALLER)
    .order_by(turns.c.seq)
)
_WORKER_FIELDS = len(WorkerRow._fields)
_TASK_FIELDS = len(TaskRow._fields)
_TURN = select_rows(TurnRow, turns).where(turns.c.id == bindparam("turn_id"))
_TURNS_OF = (
    select_rows(TurnRow, turns).where(turns.c.task_id == bindparam("task_id")).order_by(turns.c.seq)
)
_FILES_OF_TASK = (
    select_rows(TurnFileRow, turn_files)
    .join(turns, turns.c.id == turn_files.c.turn_id)
    .where(turns.c.task_id == bindparam("task_id"))
    .order_by(turn_files.c.turn_id, turn_files.c.path)
)
_INSERT_TASK = sa.insert(tasks)
_INSERT_TURN = sa.insert(turns)
_INSERT_FILE = sa.insert(turn_files)

_START_TURN = (
    sa.update(turns)
    .where(turns.c.id == bindparam("b_turn_id"), turns.c.status == "pending")
    .values(status="running", started_at=bindparam("b_now"))
    .returning(turns.c.task_id)
)
_TASK_RUNNING = (
    sa.update(tasks).where(tasks.c.id == bindparam("b_task_id")).values(status="running")
)
_TURN_STATE = select(turns.c.task_id, turns.c.status, turns.c.started_at).where(
    turns.c.id == bindparam("b_turn_id")
)
_CLOSE_TASK = (
    sa.update(tasks)
    .where(tasks.c.id == bindparam("b_task_id"), tasks.c.active_turn_id == bindparam("b_turn_id"))
    .values(
        active_turn_id=None,
        status=bindparam("b_status"),
        credits=tasks.c.credits + bindparam("b_credits"),
        duration_ms=tasks.c.duration_ms + bindparam("b_duration_ms"),
        completed_at=bindparam("b_now"),
    )
)
_CLAIM_TASK = (
    sa.update(tasks)
    .where(tasks.c.id == bindparam("b_task_id"), tasks.c.active_turn_id.is_(None))
    .values(
        active_turn_id=bindparam("b_turn_id"),
        status="pending",
        turn_count=tasks.c.turn_count + 1,
        last_turn_at=bindparam("b_now"),
        completed_at=None,
    )
    .returning(*select_rows(TaskRow, tasks).selected_columns)
)


# -- reads ----------------------------------------------------------------------------------


async def by_id(r: Read, task_id: str) -> TaskRow | None:
    row = await r.first(_BY_ID, {"task_id": task_id})
    return TaskRow._make(row) if row else None


async def by_public_id(r: Read, organization_id: str, public_id: str) -> TaskRow | None:
    """The organization's task of that API id, whoever may see it."""
    row = await r.first(_BY_PUBLIC_ID, {"organization_id": organization_id, "public_id": public_id})
    return TaskRow._make(row) if row else None


async def visible(r: Read, caller: Caller, public_id: str) -> TaskRow | None:
    """The task of that API id, if the caller may see its worker."""
    row = await r.first(_VISIBLE, {"public_id": public_id, **caller_params(caller)})
    return TaskRow._make(row) if row else None


async def visible_of_worker(
    r: Read, caller: Caller, public_id: str, worker_id: str
) -> TaskRow | None:
    """The task of that API id, if it is that worker's and the caller may see it."""
    task = await visible(r, caller, public_id)
    return task if task is not None and task.worker_id == worker_id else None


async def latest_of_worker(r: Read, worker_id: str) -> TaskRow | None:
    row = await r.first(_LATEST_OF_WORKER, {"worker_id": worker_id})
    return TaskRow._make(row) if row else None


class WorkerLatestTask(NamedTuple):
    worker: WorkerRow
    has_files: bool  # in its workspace
    task: TaskRow | None
    turns: list[TurnRow]


async def visible_worker_latest_task_and_turns(
    r: Read, caller: Caller, worker_id: str
) -> WorkerLatestTask | None:
    """The worker, if the caller may see it, whether it has files, its latest task if it has
    one, and that task's turns in order, as of one moment."""
    rows = await r.all(
        _VISIBLE_WORKER_LATEST_TASK_AND_TURNS, {"worker_id": worker_id, **caller_params(caller)}
    )
    if not rows:
        return None
    first = rows[0]
    task_at = _WORKER_FIELDS + 1
    turns_at = task_at + _TASK_FIELDS
    task = first[task_at:turns_at]
    return WorkerLatestTask(
        WorkerRow._make(first[:_WORKER_FIELDS]),
        bool(first[_WORKER_FIELDS]),
        TaskRow._make(task) if task[0] else None,
        [TurnRow._make(row[turns_at:]) for row in rows if row[turns_at] is not None],
    )


async def turn(r: Read, turn_id: str) -> TurnRow | None:
    row = await r.first(_TURN, {"turn_id": turn_id})
    return TurnRow._make(row) if row else None


async def turns_of(r: Read, task_id: str) -> list[TurnRow]:
    return [TurnRow._make(row) for row in await r.all(_TURNS_OF, {"task_id": task_id})]


async def files_of_task(r: Read, task_id: str) -> list[TurnFileRow]:
    return [TurnFileRow._make(row) for row in await r.all(_FILES_OF_TASK, {"task_id": task_id})]


async def page_visible(
    r: Read,
    caller: Caller,
    *,
    worker_id: str | None,
    status: str | None,
    page: int,
    size: int,
    search: str | None = None,
    triggered_by: str | None = None,
) -> tuple[list[TaskRow], int]:
    """A page of the caller's visible, unarchived tasks, newest first, and how many there are;
    `search`: only those whose title holds it, in any case."""
    where = [
        VISIBLE_TO_CALLER,
        tasks.c.organization_id == bindparam("caller_organization_id"),
        tasks.c.archived_at.is_(None),
    ]
    if worker_id is not None:
        where.append(tasks.c.worker_id == worker_id)
    if status is not None:
        where.append(tasks.c.status == status)
    if triggered_by is not None:
        where.append(tasks.c.triggered_by == triggered_by)
    if search:
        where.append(func.lower(tasks.c.title).contains(search.lower(), autoescape=True))
    joined = tasks.join(workers, workers.c.id == tasks.c.worker_id)
    params = caller_params(caller)
    total = await r.scalar(select(func.count()).select_from(joined).where(*where), params)
    rows = await r.all(
        _TASKS.select_from(joined)
        .where(*where)
        .order_by(tasks.c.created_at.desc(), tasks.c.id.desc())
        .offset((page - 1) * size)
        .limit(size),
        params,
    )
    return [TaskRow._make(row) for row in rows], int(total or 0)


async def in_flight_turn_ids(r: Read, *, worker_id: str) -> list[str]:
    query = (
        select(turns.c.id)
        .join(tasks, tasks.c.id == turns.c.task_id)
        .where(turns.c.status.in_(IN_FLIGHT), tasks.c.worker_id == worker_id)
    )
    return [row.id for row in await r.all(query)]


async def pending_turn_ids(
    r: Read, *, created_before: datetime | None = None, limit: int | None = None
) -> list[str]:
    """Turns not yet started: all, or the oldest `limit` made before `created_before`."""
    query = select(turns.c.id).where(turns.c.status == "pending")
    if created_before is not None:
        query = query.where(turns.c.created_at < created_before)
    if limit is not None:
        query = query.order_by(turns.c.created_at).limit(limit)
    return [row.id for row in await r.all(query)]


async def running_turn_ids(r: Read) -> list[str]:
    return [row.id for row in await r.all(select(turns.c.id).where(turns.c.status == "running"))]


# -- writes ---------------------------------------------------------------------------------


async def insert_task(w: Write, task: TaskRow) -> None:
    await w.execute(_INSERT_TASK, task._asdict())


async def insert_turn(w: Write, turn: TurnRow) -> None:
    await w.execute(_INSERT_TURN, turn._asdict())


async def insert_files(w: Write, files: Sequence[TurnFileRow]) -> None:
    if files:
        await w.execute(_INSERT_FILE, [f._asdict() for f in files])


async def record_file(w: Write, turn_id: str, path: str, media_type: str, size: int) -> None:
    """Note that a turn published a file (idempotent: a re-run step writes the same row)."""
    await w.execute(
        sa.delete(turn_files).where(turn_files.c.turn_id == turn_id, turn_files.c.path == path)
    )
    await w.execute(_INSERT_FILE, TurnFileRow(turn_id, path, media_type, size, utcnow())._asdict())


async def claim_for_turn(w: Write, task_id: str, turn_id: str) -> TaskRow | None:
    """Make `turn_id` the task's turn in flight, unless another one already is; the task as
    it is now."""
    params = {"b_task_id": task_id, "b_turn_id": turn_id, "b_now": utcnow()}
    row = await w.first(_CLAIM_TASK, params)
    return TaskRow._make(row) if row else None


async def start_turn(w: Write, turn_id: str) -> bool:
    """Mark a pending turn running; False when it is no longer pending (aborted)."""
    started = await w.first(_START_TURN, {"b_turn_id": turn_id, "b_now": utcnow()})
    if started is not None:
        await w.execute(_TASK_RUNNING, {"b_task_id": started.task_id})
        return True
    # A recovered workflow finds its turn running already: carry on with it.
    found = await w.first(_TURN_STATE, {"b_turn_id": turn_id})
    return found is not None and found.status == "running"


async def finish_turn(
    w: Write,
    turn_id: str,
    status: str,
    values: dict[str, Any],
    *,
    only_from: Sequence[str],
    listeners: Sequence[str],
) -> bool:
    """Record the end of a turn that is in one of the `only_from` states, with the names of the
    listeners that end concerns; False otherwise (it ended already: aborted meanwhile, or
    recorded by an earlier run)."""
    now = utcnow()
    found = await w.first(_TURN_STATE, {"b_turn_id": turn_id})
    if found is None or found.status not in only_from:
        return False
    duration_ms = max(0, int((now - (found.started_at or now)).total_seconds() * 1000))
    finished = await w.execute(
        sa.update(turns)
        .where(turns.c.id == turn_id, turns.c.status.in_(only_from))
        .values(
            status=status,
            completed_at=now,
            duration_ms=duration_ms,
            listeners=list(listeners),
            **values,
        )
    )
    if not finished:
        return False
    await w.execute(
        _CLOSE_TASK,
        {
            "b_task_id": found.task_id,
            "b_turn_id": turn_id,
            "b_status": status,
            "b_credits": values.get("credits", 0),
            "b_duration_ms": duration_ms,
            "b_now": now,
        },
    )
    return True


_TURN_END = select(turns.c.status, turns.c.listeners).where(turns.c.id == bindparam("turn_id"))


async def end_of(r: Read, turn_id: str) -> TurnEnd | None:
    """The turn's status and the listeners stored with its end."""
    row = await r.first(_TURN_END, {"turn_id": turn_id})
    return TurnEnd(row.status, list(row.listeners or ())) if row else None


async def archive(w: Write, task_id: str) -> None:
    await w.execute(sa.update(tasks).where(tasks.c.id == task_id).values(archived_at=utcnow()))


async def task_and_turns(
    r: Read, *, worker_id: str, task_id: str | None = None
) -> tuple[TaskRow | None, list[TurnRow]]:
    """The task (by internal id), else the worker's latest task, and its turns in order."""
    task = await by_id(r, task_id) if task_id else await latest_of_worker(r, worker_id)
    return task, (await turns_of(r, task.id) if task else [])


# -- the dashboard: what each worker did, and credits over time -----------------------------

__all__ += ["WorkerActivity", "activity_of_workers", "turn_credits_since"]


class WorkerActivity(NamedTuple):
    worker_id: str
    last_status: str | None  # of its latest task; None when it never ran
    last_run_at: datetime | None
    credits: int  # of all its tasks, archived ones included


_RECENT = tasks.alias("recent")
_SPENT = tasks.alias("spent")
_ACTIVITY = (
    select(
        workers.c.id,
        tasks.c.status,
        tasks.c.last_turn_at,
        select(func.coalesce(func.sum(_SPENT.c.credits), 0))
        .where(_SPENT.c.worker_id == workers.c.id)
        .correlate(workers)
        .scalar_subquery(),
    )
    .select_from(
        workers.outerjoin(
            tasks,
            tasks.c.id
            == select(_RECENT.c.id)
            .where(_RECENT.c.worker_id == workers.c.id)
            .order_by(_RECENT.c.last_turn_at.desc(), _RECENT.c.id.desc())
            .limit(1)
            .correlate(workers)
            .scalar_subquery(),
        )
    )
    .where(workers.c.id.in_(bindparam("worker_ids", expanding=True)), VISIBLE_TO_CALLER)
)


async def activity_of_workers(
    r: Read, caller: Caller, worker_ids: Sequence[str]
) -> dict[str, WorkerActivity]:
    """Latest task and credits spent of each of those workers the caller may see."""
    if not worker_ids:
        return {}
    rows = await r.all(_ACTIVITY, {"worker_ids": list(worker_ids), **caller_params(caller)})
    found = [WorkerActivity(row[0], row[1], row[2], int(row[3] or 0)) for row in rows]
    return {activity.worker_id: activity for activity in found}


async def turn_credits_since(
    r: Read, worker_id: str, since: datetime
) -> list[tuple[datetime, int]]:
    """(completed at, credits) of the worker's turns that spent credits since `since`."""
    rows = await r.all(
        select(turns.c.completed_at, turns.c.credits)
        .join(tasks, tasks.c.id == turns.c.task_id)
        .where(
            tasks.c.worker_id == worker_id,
            turns.c.completed_at >= since,
            turns.c.credits > 0,
        )
    )
    return [(row[0], int(row[1])) for row in rows]


async def merge_trigger(w: Write, task_id: str, values: dict[str, Any]) -> None:
    """Add `values` to what the task records of its trigger (its `metadata`)."""
    current = await w.scalar(select(tasks.c.trigger).where(tasks.c.id == task_id))
    merged = {**(current or {}), **values}
    await w.execute(sa.update(tasks).where(tasks.c.id == task_id).values(trigger=merged))
