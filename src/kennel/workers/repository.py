"""The only code that queries worker templates, their instruction versions and members."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, bindparam, delete, func, insert, or_, select, update

from kennel.auth import Caller
from kennel.core.timestamps import utcnow
from kennel.db import Read, Write, row_columns, select_rows
from kennel.models import users, worker_instruction_versions, worker_members, workers

__all__ = [
    "VISIBLE_TO_CALLER",
    "MemberRow",
    "WorkerRow",
    "add_member",
    "by_id",
    "caller_params",
    "email_local_part_taken",
    "insert_worker",
    "instructions_of",
    "is_member",
    "mark_deleted",
    "members",
    "new_instructions_version",
    "page_visible",
    "remove_member",
    "update_worker",
    "visible",
]


class WorkerRow(NamedTuple):
    id: str
    organization_id: str
    user_id: str
    title: str
    summary: str
    instructions: str
    instructions_version: int
    output_schema: dict[str, Any] | None
    visibility: str
    email_local_part: str
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    mcp_servers: list[str]  # names of the organization's MCP servers its agent may call


class MemberRow(NamedTuple):
    worker_id: str
    user_id: str
    email: str
    created_at: datetime


# Live workers of the caller's organization that the caller may see. Built once with the caller
# as bound parameters (`caller_params`), as it runs on nearly every request.
VISIBLE_TO_CALLER: ColumnElement[bool] = (
    (workers.c.organization_id == bindparam("caller_organization_id"))
    & workers.c.deleted_at.is_(None)
    & or_(
        workers.c.visibility == "public",
        workers.c.user_id == bindparam("caller_user_id"),
        select(worker_members.c.worker_id)
        .where(
            worker_members.c.worker_id == workers.c.id,
            worker_members.c.user_id == bindparam("caller_user_id"),
        )
        .exists(),
    )
)
_SELECT = select_rows(WorkerRow, workers)
_BY_ID = _SELECT.where(workers.c.id == bindparam("worker_id"))
_VISIBLE = _SELECT.where(workers.c.id == bindparam("worker_id"), VISIBLE_TO_CALLER)
_INSTRUCTIONS = select(worker_instruction_versions.c.instructions).where(
    worker_instruction_versions.c.worker_id == bindparam("worker_id"),
    worker_instruction_versions.c.version == bindparam("version"),
)
_LOCAL_PART_TAKEN = (
    select(workers.c.id).where(workers.c.email_local_part == bindparam("local_part")).limit(1)
)
_INSERT = insert(workers)
_INSERT_VERSION = insert(worker_instruction_versions)


def caller_params(caller: Caller) -> dict[str, str]:
    """The bound parameters of `VISIBLE_TO_CALLER`."""
    return {"caller_organization_id": caller.organization_id, "caller_user_id": caller.user_id}


async def visible(r: Read, caller: Caller, worker_id: str) -> WorkerRow | None:
    """The worker, if it is live and the caller may see it."""
    row = await r.first(_VISIBLE, {"worker_id": worker_id, **caller_params(caller)})
    return WorkerRow._make(row) if row else None


async def by_id(r: Read, worker_id: str) -> WorkerRow | None:
    """The worker, deleted or not, whoever asks (for background work that holds its id)."""
    row = await r.first(_BY_ID, {"worker_id": worker_id})
    return WorkerRow._make(row) if row else None


async def page_visible(
    r: Read,
    caller: Caller,
    *,
    visibility: str | None,
    page: int,
    size: int,
    search: str | None = None,
) -> tuple[list[WorkerRow], int]:
    """A page of the workers the caller may see, newest first, and how many there are;
    `search`: only those whose title or summary holds it, in any case."""
    where = [VISIBLE_TO_CALLER]
    if visibility is not None:
        where.append(workers.c.visibility == visibility)
    if search:
        needle = search.lower()
        where.append(
            func.lower(workers.c.title).contains(needle, autoescape=True)
            | func.lower(workers.c.summary).contains(needle, autoescape=True)
        )
    params = caller_params(caller)
    total = await r.scalar(select(func.count()).select_from(workers).where(*where), params)
    rows = await r.all(
        _SELECT.where(*where)
        .order_by(workers.c.created_at.desc(), workers.c.id.desc())
        .offset((page - 1) * size)
        .limit(size),
        params,
    )
    return [WorkerRow._make(row) for row in rows], int(total or 0)


async def email_local_part_taken(r: Read, local_part: str) -> bool:
    return await r.first(_LOCAL_PART_TAKEN, {"local_part": local_part}) is not None


async def insert_worker(w: Write, worker: WorkerRow) -> None:
    """A new worker and its first instructions version."""
    await w.execute(_INSERT, worker._asdict())
    await w.execute(
        _INSERT_VERSION,
        {
            "worker_id": worker.id,
            "version": worker.instructions_version,
            "instructions": worker.instructions,
            "created_by_user_id": worker.user_id,
            "created_at": worker.created_at,
        },
    )


async def update_worker(w: Write, worker_id: str, values: dict[str, Any]) -> WorkerRow:
    """Set the columns `values` names; the row as it is now."""
    row = await w.first(
        update(workers)
        .where(workers.c.id == worker_id)
        .values(**values, updated_at=utcnow())
        .returning(*row_columns(WorkerRow, workers))
    )
    assert row is not None, worker_id
    return WorkerRow._make(row)


async def new_instructions_version(
    w: Write, worker_id: str, instructions: str, created_by_user_id: str
) -> WorkerRow:
    """Replace the instructions as a new version; the row as it is now."""
    # An atomic increment, so that concurrent PATCHes get distinct version numbers.
    now = utcnow()
    row = await w.first(
        update(workers)
        .where(workers.c.id == worker_id)
        .values(
            instructions=instructions,
            instructions_version=workers.c.instructions_version + 1,
            updated_at=now,
        )
        .returning(*row_columns(WorkerRow, workers))
    )
    assert row is not None, worker_id
    worker = WorkerRow._make(row)
    await w.execute(
        _INSERT_VERSION,
        {
            "worker_id": worker_id,
            "version": worker.instructions_version,
            "instructions": instructions,
            "created_by_user_id": created_by_user_id,
            "created_at": now,
        },
    )
    return worker


async def instructions_of(r: Read, worker_id: str, version: int) -> str | None:
    found = await r.scalar(_INSTRUCTIONS, {"worker_id": worker_id, "version": version})
    return str(found) if found is not None else None


async def mark_deleted(w: Write, worker_id: str) -> None:
    await w.execute(update(workers).where(workers.c.id == worker_id).values(deleted_at=utcnow()))


async def members(r: Read, worker_id: str) -> list[MemberRow]:
    rows = await r.all(
        select(
            worker_members.c.worker_id,
            worker_members.c.user_id,
            users.c.email,
            worker_members.c.created_at,
        )
        .join(users, users.c.id == worker_members.c.user_id)
        .where(worker_members.c.worker_id == worker_id)
        .order_by(worker_members.c.created_at, worker_members.c.user_id)
    )
    return [MemberRow._make(row) for row in rows]


async def is_member(r: Read, worker_id: str, user_id: str) -> bool:
    found = await r.first(
        select(worker_members.c.user_id).where(
            worker_members.c.worker_id == worker_id, worker_members.c.user_id == user_id
        )
    )
    return found is not None


async def add_member(w: Write, worker_id: str, user_id: str) -> None:
    await w.execute(
        insert(worker_members),
        {"worker_id": worker_id, "user_id": user_id, "created_at": utcnow()},
    )


async def remove_member(w: Write, worker_id: str, user_id: str) -> bool:
    statement = delete(worker_members).where(
        worker_members.c.worker_id == worker_id, worker_members.c.user_id == user_id
    )
    return bool(await w.execute(statement))
