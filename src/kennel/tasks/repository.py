"""The only code that queries tasks, turns and the files turns published."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from kennel.auth import Caller
from kennel.models import Task, Turn, TurnFile, Worker
from kennel.models.base import NewRow
from kennel.timestamps import utcnow
from kennel.workers.repository import VISIBLE_TO_CALLER, caller_params
from kennel.writes import Transaction, on_connection

__all__ = [
    "FILES_OF_TASK",
    "IN_FLIGHT",
    "LATEST_TASK_ROW",
    "TASK_ROW",
    "TURN_ROW",
    "TURN_ROWS",
    "VISIBLE_TASK_ROW",
    "TaskRepository",
    "claim_for_turn",
    "close_task",
    "finish_turn",
    "insert_file",
    "insert_task",
    "insert_turn",
    "start_turn",
]

IN_FLIGHT = ("pending", "running")


# Built once, as Core rows for reads outside the ORM (kennel.reads): they run on every worker
# read.
LATEST_TASK_ROW = (
    select(Task.__table__)
    .where(Task.worker_id == bindparam("worker_id"))
    .order_by(Task.last_turn_at.desc(), Task.id.desc())
    .limit(1)
)
TASK_ROW = select(Task.__table__).where(Task.id == bindparam("task_id"))
TURN_ROW = select(Turn.__table__).where(Turn.id == bindparam("turn_id"))
VISIBLE_TASK_ROW = (
    select(Task.__table__)
    .join(Worker.__table__, Worker.id == Task.worker_id)
    .where(Task.id == bindparam("task_id"), VISIBLE_TO_CALLER)
)
FILES_OF_TASK = (
    select(TurnFile.__table__)
    .join(Turn.__table__, Turn.id == TurnFile.turn_id)
    .where(Turn.task_id == bindparam("task_id"))
    .order_by(TurnFile.turn_id, TurnFile.path)
)
TURN_ROWS = select(Turn.__table__).where(Turn.task_id == bindparam("task_id")).order_by(Turn.seq)


# The turn's life cycle, run by every turn: Core statements built once, run in short write
# transactions (kennel.writes; the ORM's bulk UPDATE path costs several times the statement).
_turns, _tasks = Turn.__table__, Task.__table__
_START_TURN = (
    update(_turns)
    .where(_turns.c.id == bindparam("b_turn_id"), _turns.c.status == "pending")
    .values(status="running", started_at=bindparam("b_now"))
    .returning(_turns.c.task_id)
)
_TASK_RUNNING = update(_tasks).where(_tasks.c.id == bindparam("b_task_id")).values(status="running")
_TURN_STATE = select(_turns.c.task_id, _turns.c.status, _turns.c.started_at).where(
    _turns.c.id == bindparam("b_turn_id")
)
# SET takes the columns named in the parameters.
_FINISH_TURN = update(_turns).where(
    _turns.c.id == bindparam("b_turn_id"), _turns.c.status == "running"
)
_CLOSE_TASK = (
    update(_tasks)
    .where(_tasks.c.id == bindparam("b_task_id"), _tasks.c.active_turn_id == bindparam("b_turn_id"))
    .values(
        active_turn_id=None,
        status=bindparam("b_status"),
        credits=_tasks.c.credits + bindparam("b_credits"),
        duration_ms=_tasks.c.duration_ms + bindparam("b_duration_ms"),
        completed_at=bindparam("b_now"),
    )
)

_CLAIM_TASK = (
    update(_tasks)
    .where(_tasks.c.id == bindparam("b_task_id"), _tasks.c.active_turn_id.is_(None))
    .values(
        active_turn_id=bindparam("b_turn_id"),
        status="pending",
        turn_count=_tasks.c.turn_count + 1,
        last_turn_at=bindparam("b_now"),
        completed_at=None,
    )
)
_INSERT_TASK = insert(_tasks)
_INSERT_TURN = insert(_turns)
_INSERT_FILE = insert(TurnFile.__table__)


# -- writes in a Core transaction (kennel.writes): every task and turn runs these -----------------


async def insert_task(tx: Transaction, task: NewRow) -> None:
    await tx.execute(_INSERT_TASK, task)


async def insert_turn(tx: Transaction, turn: NewRow) -> None:
    await tx.execute(_INSERT_TURN, turn)


async def insert_file(tx: Transaction, turn_id: str, path: str, media_type: str, size: int) -> None:
    """A file a new turn starts with (an upload); `TaskRepository.record_file` for the rest."""
    values = {"turn_id": turn_id, "path": path, "media_type": media_type, "size": size}
    await tx.execute(_INSERT_FILE, {**values, "created_at": utcnow()})


async def claim_for_turn(tx: Transaction, task_id: str, turn_id: str) -> bool:
    """Make `turn_id` the task's turn in flight, unless another one already is."""
    params = {"b_task_id": task_id, "b_turn_id": turn_id, "b_now": utcnow()}
    return bool(await tx.execute(_CLAIM_TASK, params))


async def start_turn(tx: Transaction, turn_id: str) -> bool:
    """Mark a pending turn running; False when it is no longer pending (aborted)."""
    started = await tx.first(_START_TURN, {"b_turn_id": turn_id, "b_now": utcnow()})
    if started is not None:
        await tx.execute(_TASK_RUNNING, {"b_task_id": started.task_id})
        return True
    # A recovered workflow finds its turn running already: carry on with it.
    found = await tx.first(_TURN_STATE, {"b_turn_id": turn_id})
    return found is not None and found.status == "running"


async def finish_turn(tx: Transaction, turn_id: str, status: str, values: dict[str, Any]) -> bool:
    """Record the end of a running turn; False when it was aborted meanwhile."""
    now = utcnow()
    turn = await tx.first(_TURN_STATE, {"b_turn_id": turn_id})
    if turn is None or turn.status != "running":
        return False
    duration_ms = max(0, int((now - (turn.started_at or now)).total_seconds() * 1000))
    finished = await tx.execute(
        _FINISH_TURN,
        {
            "b_turn_id": turn_id,
            "status": status,
            "completed_at": now,
            "duration_ms": duration_ms,
            **values,
        },
    )
    if not finished:
        return False
    await close_task(tx, turn.task_id, turn_id, status, values.get("credits", 0), duration_ms)
    return True


async def close_task(
    tx: Transaction, task_id: str, turn_id: str, status: str, credits: int, duration_ms: int
) -> None:
    """The task's turn in flight has ended: add up its figures and free the task."""
    await tx.execute(
        _CLOSE_TASK,
        {
            "b_task_id": task_id,
            "b_turn_id": turn_id,
            "b_status": status,
            "b_credits": credits,
            "b_duration_ms": duration_ms,
            "b_now": utcnow(),
        },
    )


class TaskRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # -- reads -------------------------------------------------------------------------------

    async def get_visible(self, caller: Caller, task_id: str) -> tuple[Task, Worker] | None:
        row = (
            await self.session.execute(
                select(Task, Worker)
                .join(Worker, Worker.id == Task.worker_id)
                .where(Task.id == task_id, VISIBLE_TO_CALLER),
                caller_params(caller),
            )
        ).first()
        return (row[0], row[1]) if row else None

    async def page(
        self,
        caller: Caller,
        *,
        worker_id: str | None,
        status: str | None,
        page: int,
        size: int,
    ) -> tuple[list[Task], int]:
        where = [VISIBLE_TO_CALLER, Task.archived_at.is_(None)]
        if worker_id is not None:
            where.append(Task.worker_id == worker_id)
        if status is not None:
            where.append(Task.status == status)
        base = select(Task).join(Worker, Worker.id == Task.worker_id).where(*where)
        params = caller_params(caller)
        total = await self.session.scalar(select(func.count()).select_from(base.subquery()), params)
        rows = await self.session.scalars(
            base.order_by(Task.created_at.desc(), Task.id.desc())
            .offset((page - 1) * size)
            .limit(size),
            params,
        )
        return list(rows), int(total or 0)

    async def in_flight_turn_ids(self, *, worker_id: str | None = None) -> list[str]:
        query = (
            select(Turn.id).join(Task, Task.id == Turn.task_id).where(Turn.status.in_(IN_FLIGHT))
        )
        if worker_id is not None:
            query = query.where(Task.worker_id == worker_id)
        return list(await self.session.scalars(query))

    async def pending_turn_ids(self) -> list[str]:
        return list(await self.session.scalars(select(Turn.id).where(Turn.status == "pending")))

    # -- writes ------------------------------------------------------------------------------

    async def abort_turn(self, turn_id: str, message: str) -> bool:
        now = utcnow()
        turn = await self.session.get(Turn, turn_id, populate_existing=True)
        if turn is None:
            return False
        result = await self.session.execute(
            update(Turn)
            .where(Turn.id == turn_id, Turn.status.in_(IN_FLIGHT))
            .values(
                status="aborted",
                completed_at=now,
                error_code="aborted",
                error_message=message,
                duration_ms=int((now - (turn.started_at or now)).total_seconds() * 1000),
            )
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            return False
        tx = on_connection(await self.session.connection())
        await close_task(tx, turn.task_id, turn_id, "aborted", 0, 0)
        return True

    async def archive(self, task: Task) -> None:
        task.archived_at = utcnow()
        await self.session.flush()

    async def record_file(self, turn_id: str, path: str, media_type: str, size: int) -> None:
        """Note that a turn published a file (idempotent: a re-run step writes the same row)."""
        values = {
            "turn_id": turn_id,
            "path": path,
            "media_type": media_type,
            "size": size,
            "created_at": utcnow(),
        }
        dialect = self.session.bind.dialect.name
        upsert = pg_insert if dialect == "postgresql" else sqlite_insert
        statement = upsert(TurnFile).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=["turn_id", "path"],
            set_={"media_type": media_type, "size": size, "created_at": values["created_at"]},
        )
        await self.session.execute(statement)
