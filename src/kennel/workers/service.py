"""Decisions about worker templates: defaults, generated instructions, versions, visibility."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pydantic_ai.models import Model
from sqlalchemy.exc import IntegrityError

from kennel.agents import ModelError, write_worker_instructions
from kennel.agents.output import OutputSchemaError, check_output_schema
from kennel.api.errors import BadRequest, Forbidden, NotFound, UpstreamModelError
from kennel.auth import Caller
from kennel.auth import repository as auth_repo
from kennel.core.ids import new_id
from kennel.core.timestamps import utcnow
from kennel.db import Database, Read, Write
from kennel.idempotency import Idempotency, recorded, remember
from kennel.mcp_servers.service import check_worker_servers
from kennel.workers import repository as repo
from kennel.workers.events import worker_deleted
from kennel.workers.names import dog_name, email_local_part
from kennel.workers.repository import MemberRow, WorkerRow
from kennel.workers.schemas import WorkerCreate, WorkerUpdate

__all__ = [
    "PAGE_SIZE",
    "add_member",
    "create_worker",
    "delete_worker",
    "get_worker",
    "insert_worker",
    "list_members",
    "list_workers",
    "prepare_worker",
    "remove_member",
    "update_worker",
    "validate_output_schema",
    "visible_worker",
]

PAGE_SIZE = 20

log = logging.getLogger(__name__)


async def validate_output_schema(schema: dict[str, Any]) -> None:
    """A usable Draft-07 JSON Schema of an object, or a 400 naming `outputSchema`. Checked in a
    thread: a schema at the size bound costs tens of milliseconds of CPU, not the loop's."""
    try:
        await asyncio.to_thread(check_output_schema, schema)
    except OutputSchemaError as exc:
        raise BadRequest(f"outputSchema {exc}.", param="outputSchema") from None


async def visible_worker(r: Read, caller: Caller, worker_id: str) -> WorkerRow:
    """The worker, or a 404 when it is gone or the caller may not see it."""
    worker = await repo.visible(r, caller, worker_id)
    if worker is None:
        raise NotFound("worker", worker_id)
    return worker


async def get_worker(db: Database, caller: Caller, worker_id: str) -> WorkerRow:
    async with db.read(snapshot=False) as r:
        return await visible_worker(r, caller, worker_id)


async def list_workers(
    db: Database, caller: Caller, *, visibility: str | None, page: int, search: str | None = None
) -> tuple[list[WorkerRow], int]:
    async with db.read() as r:
        return await repo.page_visible(
            r, caller, visibility=visibility, page=page, size=PAGE_SIZE, search=search
        )


async def prepare_worker(
    caller: Caller, data: WorkerCreate, *, model: Model, wait_seconds: float = 20.0
) -> WorkerRow:
    """A new worker's row, checked and completed (the model writes the instructions when only
    a prompt is given) before any transaction begins: a slow model holds no lock.

    A model that has not written them in `wait_seconds` is not waited for: the prompt itself
    becomes the instructions. The SDKs give up on a request after 60 s and send it again, and
    every try made a worker."""
    if data.output_schema is not None:
        await validate_output_schema(data.output_schema)
    instructions, summary = data.instructions, data.summary
    if instructions is None and data.prompt:
        try:
            async with asyncio.timeout(wait_seconds):
                written = await write_worker_instructions(
                    model, data.prompt, want_summary=summary is None
                )
        except ModelError as exc:
            raise UpstreamModelError(exc.message) from None
        except TimeoutError:
            log.warning(
                "the model took over %g s to write a worker's instructions: the prompt is used",
                wait_seconds,
            )
            instructions, summary = data.prompt, summary or ""
        else:
            instructions = written.instructions
            summary = summary if summary is not None else (written.summary or "")
    title = data.title or dog_name()
    now = utcnow()
    return WorkerRow(
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
        deleted_at=None,
        mcp_servers=data.mcp_servers or [],
    )


async def insert_worker(w: Write, worker: WorkerRow) -> WorkerRow:
    """Insert a prepared worker, with an e-mail local part no other worker has."""
    # 32 random bits per title make a clash rare, not impossible.
    while await repo.email_local_part_taken(w, worker.email_local_part):
        worker = worker._replace(email_local_part=email_local_part(worker.title))
    await repo.insert_worker(w, worker)
    return worker


async def create_worker(
    db: Database,
    caller: Caller,
    data: WorkerCreate,
    *,
    model: Model,
    wait_seconds: float = 20.0,
    idempotency: Idempotency | None = None,
) -> WorkerRow:
    """Make the worker; with a key already used for this request, the worker it made."""
    organization_id = caller.organization_id
    if idempotency:
        async with db.read() as r:
            if earlier := await _made_before(r, organization_id, idempotency):
                return earlier
    if data.mcp_servers:  # before the model writes any instructions
        async with db.read() as r:
            names = await check_worker_servers(r, organization_id, data.mcp_servers)
        data = data.model_copy(update={"mcp_servers": names})
    worker = await prepare_worker(caller, data, model=model, wait_seconds=wait_seconds)
    try:
        async with db.write() as w:
            if idempotency and (earlier := await _made_before(w, organization_id, idempotency)):
                return earlier  # a copy of the request finished while the model wrote
            inserted = await insert_worker(w, worker)
            if idempotency:
                await remember(w, organization_id, idempotency, inserted.id)
            return inserted
    except IntegrityError:
        if idempotency:  # a copy of the request recorded the key first (PostgreSQL)
            async with db.read() as r:
                if earlier := await _made_before(r, organization_id, idempotency):
                    return earlier
        raise


async def _made_before(r: Read, organization_id: str, idempotency: Idempotency) -> WorkerRow | None:
    worker_id = await recorded(r, organization_id, idempotency)
    return await repo.by_id(r, worker_id) if worker_id else None


async def update_worker(
    db: Database, caller: Caller, worker_id: str, data: WorkerUpdate
) -> WorkerRow:
    changes = data.model_dump(exclude_unset=True)
    for name in ("title", "instructions", "summary", "visibility"):
        if name in changes and changes[name] is None:
            raise BadRequest(f"{name} cannot be null.", param=name)
    if changes.get("output_schema") is not None:
        await validate_output_schema(changes["output_schema"])
    if "mcp_servers" in changes and changes["mcp_servers"] is None:
        raise BadRequest("mcpServers cannot be null; [] clears it.", param="mcpServers")
    async with db.write() as w:
        worker = await visible_worker(w, caller, worker_id)
        if "mcp_servers" in changes:
            changes["mcp_servers"] = await check_worker_servers(
                w, caller.organization_id, changes["mcp_servers"]
            )
        if "visibility" in changes and changes["visibility"] != worker.visibility:
            _require_creator(caller, worker, "change the visibility of")
        instructions = changes.pop("instructions", None)
        if changes:
            worker = await repo.update_worker(w, worker.id, changes)
        if instructions is not None:
            # Every PATCH of instructions is a new version; running tasks keep theirs.
            worker = await repo.new_instructions_version(w, worker.id, instructions, caller.user_id)
    return worker


async def delete_worker(db: Database, caller: Caller, worker_id: str) -> None:
    """Soft-delete the worker; its tasks, schedules and webhook hear of it (`events`)."""
    async with db.write() as w:
        worker = await visible_worker(w, caller, worker_id)
        _require_creator(caller, worker, "delete")
        await repo.mark_deleted(w, worker.id)
        after_commit = await worker_deleted(w, worker.id)
    for then in after_commit:
        await then()


async def list_members(
    db: Database, caller: Caller, worker_id: str
) -> tuple[WorkerRow, list[MemberRow]]:
    async with db.read() as r:
        worker = await visible_worker(r, caller, worker_id)
        return worker, await repo.members(r, worker.id)


async def add_member(db: Database, caller: Caller, worker_id: str, user_id: str) -> MemberRow:
    async with db.write() as w:
        worker = await visible_worker(w, caller, worker_id)
        _require_creator(caller, worker, "invite members to")
        user = await auth_repo.user_in_organization(w, caller.organization_id, user_id)
        if user is None:
            raise NotFound("user", user_id)
        if not await repo.is_member(w, worker.id, user.id):
            await repo.add_member(w, worker.id, user.id)
        return next(m for m in await repo.members(w, worker.id) if m.user_id == user.id)


async def remove_member(db: Database, caller: Caller, worker_id: str, user_id: str) -> None:
    async with db.write() as w:
        worker = await visible_worker(w, caller, worker_id)
        _require_creator(caller, worker, "remove members from")
        if not await repo.remove_member(w, worker.id, user_id):
            raise NotFound("member", user_id)


def _require_creator(caller: Caller, worker: WorkerRow, action: str) -> None:
    if worker.user_id != caller.user_id:
        raise Forbidden(f"Only the worker's creator may {action} this worker.")
