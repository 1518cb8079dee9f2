"""Decisions about worker templates: defaults, generated instructions, versions, visibility."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft7Validator, SchemaError
from pydantic_ai.models import Model
from sqlalchemy.ext.asyncio import AsyncSession

from kennel.agents import ModelError, write_worker_instructions
from kennel.auth import Caller
from kennel.auth.repository import AuthRepository
from kennel.errors import BadRequest, Forbidden, NotFound, UpstreamModelError
from kennel.ids import new_id
from kennel.models import Worker, WorkerMember
from kennel.models.base import NewRow, new_row
from kennel.models.organization import User
from kennel.reads import Snapshot
from kennel.timestamps import utcnow
from kennel.workers import repository
from kennel.workers.names import dog_name, email_local_part
from kennel.workers.repository import (
    VISIBLE_ROW_BY_ID,
    WorkerRepository,
    caller_params,
    email_local_part_taken,
)
from kennel.workers.schemas import WorkerCreate, WorkerUpdate
from kennel.writes import Transaction, Writer

__all__ = [
    "add_member",
    "check_output_schema",
    "create_worker",
    "delete_worker",
    "get_worker",
    "insert_worker",
    "list_members",
    "prepare_worker",
    "read_worker",
    "remove_member",
    "update_worker",
]


def check_output_schema(schema: dict[str, Any]) -> None:
    """A Draft-07 JSON Schema that describes an object, or a 400 naming `outputSchema`."""
    try:
        Draft7Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        at = f" at {where!r}" if where else ""
        raise BadRequest(
            f"outputSchema is not a valid Draft-07 JSON Schema{at}: {exc.message}",
            param="outputSchema",
        ) from None
    kind = schema.get("type")
    if kind is not None and kind != "object":
        raise BadRequest(
            "outputSchema must describe an object (type: object).", param="outputSchema"
        )


async def get_worker(session: AsyncSession, caller: Caller, worker_id: str) -> Worker:
    worker = await WorkerRepository(session).get_visible(caller, worker_id)
    if worker is None:
        raise NotFound("worker", worker_id)
    return worker


async def read_worker(read: Snapshot, caller: Caller, worker_id: str) -> Any:
    """`get_worker` outside the ORM: a Core row with the same attributes as a `Worker`."""
    row = await read.first(VISIBLE_ROW_BY_ID, {"worker_id": worker_id, **caller_params(caller)})
    if row is None:
        raise NotFound("worker", worker_id)
    return row


async def prepare_worker(caller: Caller, data: WorkerCreate, *, model: Model) -> NewRow:
    """A new worker's row, checked and completed (the model writes the instructions when only
    a prompt is given) before any transaction begins: a slow model holds no lock."""
    if data.output_schema is not None:
        check_output_schema(data.output_schema)
    instructions, summary = data.instructions, data.summary
    if instructions is None and data.prompt:
        try:
            written = await write_worker_instructions(
                model, data.prompt, want_summary=summary is None
            )
        except ModelError as exc:
            raise UpstreamModelError(exc.message) from None
        instructions = written.instructions
        summary = summary if summary is not None else (written.summary or "")
    title = data.title or dog_name()
    now = utcnow()
    return new_row(
        Worker,
        id=new_id("wrk"),
        organization_id=caller.organization_id,
        user_id=caller.user_id,
        title=title,
        summary=summary or "",
        instructions=instructions or "",
        instructions_version=1,
        output_schema=data.output_schema,
        visibility=data.visibility,
        email_local_part=email_local_part(title),
        created_at=now,
        updated_at=now,
    )


async def insert_worker(tx: Transaction, caller: Caller, worker: NewRow) -> None:
    """Insert a prepared worker in `tx`, with an e-mail local part no other worker has."""
    # 32 random bits per title make a clash rare, not impossible: a clash would be a 500.
    while await email_local_part_taken(tx, worker.email_local_part):
        worker["email_local_part"] = email_local_part(worker.title)
    await repository.insert_worker(tx, worker, caller.user_id)


async def create_worker(
    writer: Writer, caller: Caller, data: WorkerCreate, *, model: Model
) -> NewRow:
    worker = await prepare_worker(caller, data, model=model)
    async with writer.transaction() as tx:
        await insert_worker(tx, caller, worker)
    return worker


async def update_worker(
    session: AsyncSession, caller: Caller, worker_id: str, data: WorkerUpdate
) -> Worker:
    worker = await get_worker(session, caller, worker_id)
    changes = data.model_dump(exclude_unset=True)
    for name in ("title", "instructions", "summary", "visibility"):
        if name in changes and changes[name] is None:
            raise BadRequest(f"{name} cannot be null.", param=name)
    if "output_schema" in changes and changes["output_schema"] is not None:
        check_output_schema(changes["output_schema"])
    if "visibility" in changes and changes["visibility"] != worker.visibility:
        _require_creator(caller, worker, "change the visibility of")
    repo = WorkerRepository(session)
    instructions = changes.pop("instructions", None)
    if changes:
        await repo.update(worker, changes)
    if instructions is not None:
        # Every PATCH of instructions is a new version; running tasks keep theirs.
        await repo.add_instructions_version(worker, instructions, caller.user_id)
    return worker


async def delete_worker(session: AsyncSession, caller: Caller, worker_id: str) -> None:
    worker = await get_worker(session, caller, worker_id)
    _require_creator(caller, worker, "delete")
    await WorkerRepository(session).mark_deleted(worker)


async def list_members(
    session: AsyncSession, caller: Caller, worker_id: str
) -> tuple[Worker, list[tuple[WorkerMember, User]]]:
    worker = await get_worker(session, caller, worker_id)
    return worker, await WorkerRepository(session).members(worker.id)


async def add_member(
    session: AsyncSession, caller: Caller, worker_id: str, user_id: str
) -> tuple[WorkerMember, User]:
    worker = await get_worker(session, caller, worker_id)
    _require_creator(caller, worker, "invite members to")
    user = await AuthRepository(session).user_in_organization(caller.organization_id, user_id)
    if user is None:
        raise NotFound("user", user_id)
    repo = WorkerRepository(session)
    member = await repo.member(worker.id, user.id) or await repo.add_member(worker.id, user.id)
    return member, user


async def remove_member(
    session: AsyncSession, caller: Caller, worker_id: str, user_id: str
) -> bool:
    worker = await get_worker(session, caller, worker_id)
    _require_creator(caller, worker, "remove members from")
    if not await WorkerRepository(session).remove_member(worker.id, user_id):
        raise NotFound("member", user_id)
    return True


def _require_creator(caller: Caller, worker: Worker, action: str) -> None:
    if worker.user_id != caller.user_id:
        raise Forbidden(f"Only the worker's creator may {action} this worker.")
