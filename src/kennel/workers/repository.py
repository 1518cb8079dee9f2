"""The only code that queries worker templates, their versions and members."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kennel.auth import Caller
from kennel.models import User, Worker, WorkerInstructionVersion, WorkerMember
from kennel.models.base import NewRow
from kennel.reads import Snapshot
from kennel.timestamps import utcnow
from kennel.writes import Transaction

__all__ = [
    "INSTRUCTIONS_ROW",
    "VISIBLE_ROW_BY_ID",
    "VISIBLE_TO_CALLER",
    "WORKER_ROW",
    "WorkerRepository",
    "caller_params",
    "email_local_part_taken",
    "insert_worker",
]


# Live workers of the caller's organization that the caller may see. Built once with the caller
# as bound parameters (`caller_params`), as it runs on nearly every request.
VISIBLE_TO_CALLER: ColumnElement[bool] = (
    (Worker.organization_id == bindparam("caller_organization_id"))
    & Worker.deleted_at.is_(None)
    & or_(
        Worker.visibility == "public",
        Worker.user_id == bindparam("caller_user_id"),
        select(WorkerMember.worker_id)
        .where(
            WorkerMember.worker_id == Worker.id,
            WorkerMember.user_id == bindparam("caller_user_id"),
        )
        .exists(),
    )
)
_VISIBLE_BY_ID = select(Worker).where(Worker.id == bindparam("worker_id"), VISIBLE_TO_CALLER)
# The same as Core rows, for reads outside the ORM (kennel.reads).
WORKER_ROW = select(Worker.__table__).where(Worker.id == bindparam("worker_id"))
VISIBLE_ROW_BY_ID = select(Worker.__table__).where(
    Worker.id == bindparam("worker_id"), VISIBLE_TO_CALLER
)


INSTRUCTIONS_ROW = select(WorkerInstructionVersion.__table__.c.instructions).where(
    WorkerInstructionVersion.__table__.c.worker_id == bindparam("worker_id"),
    WorkerInstructionVersion.__table__.c.version == bindparam("version"),
)
_INSERT_WORKER = insert(Worker.__table__)
_INSERT_INSTRUCTIONS_VERSION = insert(WorkerInstructionVersion.__table__)
_EMAIL_LOCAL_PART_TAKEN = (
    select(Worker.__table__.c.id)
    .where(Worker.__table__.c.email_local_part == bindparam("local_part"))
    .limit(1)
)


async def email_local_part_taken(tx: Snapshot, local_part: str) -> bool:
    return await tx.first(_EMAIL_LOCAL_PART_TAKEN, {"local_part": local_part}) is not None


async def insert_worker(tx: Transaction, worker: NewRow, created_by_user_id: str) -> None:
    """Insert a new worker (`new_row(Worker, ...)`) and its first instructions version, with
    Core statements in a write transaction (`kennel.writes`)."""
    await tx.execute(_INSERT_WORKER, worker)
    await tx.execute(
        _INSERT_INSTRUCTIONS_VERSION,
        {
            "worker_id": worker.id,
            "version": worker.instructions_version,
            "instructions": worker.instructions,
            "created_by_user_id": created_by_user_id,
            "created_at": worker.created_at,
        },
    )


def caller_params(caller: Caller) -> dict[str, str]:
    """The bound parameters of `VISIBLE_TO_CALLER`."""
    return {"caller_organization_id": caller.organization_id, "caller_user_id": caller.user_id}


class WorkerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_visible(self, caller: Caller, worker_id: str) -> Worker | None:
        return await self.session.scalar(
            _VISIBLE_BY_ID, {"worker_id": worker_id, **caller_params(caller)}
        )

    async def update(self, worker: Worker, values: dict[str, Any]) -> None:
        for name, value in values.items():
            setattr(worker, name, value)
        worker.updated_at = utcnow()
        await self.session.flush()

    async def add_instructions_version(
        self, worker: Worker, instructions: str, created_by_user_id: str
    ) -> int:
        # An atomic increment, so that concurrent PATCHes get distinct version numbers.
        version = await self.session.scalar(
            update(Worker)
            .where(Worker.id == worker.id)
            .values(
                instructions=instructions,
                instructions_version=Worker.instructions_version + 1,
                updated_at=utcnow(),
            )
            .returning(Worker.instructions_version)
        )
        assert version is not None
        self.session.add(
            WorkerInstructionVersion(
                worker_id=worker.id,
                version=version,
                instructions=instructions,
                created_by_user_id=created_by_user_id,
            )
        )
        await self.session.flush()
        await self.session.refresh(worker)
        return version

    async def mark_deleted(self, worker: Worker) -> None:
        worker.deleted_at = utcnow()
        await self.session.flush()

    async def members(self, worker_id: str) -> list[tuple[WorkerMember, User]]:
        rows = await self.session.execute(
            select(WorkerMember, User)
            .join(User, User.id == WorkerMember.user_id)
            .where(WorkerMember.worker_id == worker_id)
            .order_by(WorkerMember.created_at)
        )
        return [(m, u) for m, u in rows.all()]

    async def member(self, worker_id: str, user_id: str) -> WorkerMember | None:
        return await self.session.get(WorkerMember, (worker_id, user_id))

    async def add_member(self, worker_id: str, user_id: str) -> WorkerMember:
        member = WorkerMember(worker_id=worker_id, user_id=user_id)
        self.session.add(member)
        await self.session.flush()
        return member

    async def remove_member(self, worker_id: str, user_id: str) -> bool:
        result = await self.session.execute(
            delete(WorkerMember).where(
                WorkerMember.worker_id == worker_id, WorkerMember.user_id == user_id
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]
