"""HTTP routes of the Workers API: parse, authorize, call the service, render."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import PurePosixPath
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse

from kennel.auth import CallerDep
from kennel.db import SessionDep
from kennel.errors import NotFound
from kennel.tasks import service as tasks
from kennel.tasks.streaming import live_events, replayed_events, sse_response
from kennel.timestamps import iso_z
from kennel.workers import service
from kennel.workers.render import worker_email, worker_template
from kennel.workers.schemas import (
    DeleteWorkerResponse,
    MemberList,
    MemberRemoved,
    WorkerCreate,
    WorkerEmail,
    WorkerMemberOut,
    WorkerState,
    WorkerTemplate,
    WorkerUpdate,
)
from kennel.workspaces import Workspace

__all__ = ["router"]

router = APIRouter(prefix="/api/workers", tags=["Workers"])


@router.post("", status_code=201, response_model=WorkerTemplate, response_model_by_alias=True)
async def create_worker(body: WorkerCreate, request: Request, caller: CallerDep) -> WorkerTemplate:
    """Create a worker template."""
    # A short Core transaction (kennel.writes), begun once the model, when it writes the
    # instructions, has answered: a slow model holds no lock.
    state = request.app.state
    worker = await service.create_worker(state.db.writer, caller, body, model=state.model)
    return worker_template(state.settings, worker)


@router.get(
    "/{workerId}",
    response_model=WorkerState,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
)
async def retrieve_worker(
    workerId: str,
    request: Request,
    caller: CallerDep,
    stream: Annotated[bool, Query(description="Answer with an SSE stream instead.")] = False,
) -> Any:
    """Retrieve a worker: its live state as of its most recent task."""
    # The most frequent request: Core reads in one snapshot, no ORM session (kennel.reads).
    async with request.app.state.db.reader.snapshot() as read:
        worker = await service.read_worker(read, caller, workerId)
        settings = request.app.state.settings
        if not stream:
            return await tasks.load_worker_state(read, settings, worker)
        finished, live = await tasks.latest_turns_for_stream(read, worker.id)
        polling = settings.queue_polling_seconds

        async def events() -> AsyncIterator[Any]:
            for event in replayed_events(finished):
                yield event
            if live is not None:
                async for event in live_events(live, polling_seconds=polling):
                    yield event

    return sse_response(events())


@router.get("/{workerId}/files/{path:path}", response_class=FileResponse)
async def download_worker_file(
    workerId: str, path: str, request: Request, session: SessionDep, caller: CallerDep
) -> FileResponse:
    """Download a file from the worker's workspace."""
    worker = await service.get_worker(session, caller, workerId)
    settings = request.app.state.settings
    workspace = Workspace(settings.data_dir, worker.id, max_file_bytes=settings.max_file_bytes)
    found = workspace.file(path)
    if found is None:
        raise NotFound("file", path)
    full_path, info = found
    return FileResponse(
        full_path, media_type=info.media_type, filename=PurePosixPath(info.path).name
    )


@router.patch("/{workerId}", response_model=WorkerTemplate)
async def update_worker(
    workerId: str, body: WorkerUpdate, request: Request, session: SessionDep, caller: CallerDep
) -> WorkerTemplate:
    """Update a worker template."""
    worker = await service.update_worker(session, caller, workerId, body)
    return worker_template(request.app.state.settings, worker)


@router.delete("/{workerId}", response_model=DeleteWorkerResponse)
async def delete_worker(
    workerId: str, session: SessionDep, caller: CallerDep
) -> DeleteWorkerResponse:
    """Delete a worker template, aborting its running tasks."""
    await service.delete_worker(session, caller, workerId)
    aborted = await tasks.abort_turns(session, workerId, "The worker was deleted.")
    await session.commit()
    await tasks.cancel_workflows(aborted)
    return DeleteWorkerResponse(deleted=True)


@router.get("/{workerId}/email", response_model=WorkerEmail)
async def retrieve_worker_email(
    workerId: str, request: Request, session: SessionDep, caller: CallerDep
) -> WorkerEmail:
    """Retrieve a worker's inbound e-mail address."""
    worker = await service.get_worker(session, caller, workerId)
    return WorkerEmail(email=worker_email(request.app.state.settings, worker))


@router.get("/{workerId}/members", response_model=MemberList)
async def list_worker_members(workerId: str, session: SessionDep, caller: CallerDep) -> MemberList:
    """List the members invited to a worker."""
    worker, rows = await service.list_members(session, caller, workerId)
    return MemberList(
        worker_id=worker.id,
        members=[
            WorkerMemberOut(
                worker_id=m.worker_id, user_id=u.id, email=u.email, created_at=iso_z(m.created_at)
            )
            for m, u in rows
        ],
    )


@router.put("/{workerId}/members/{userId}", response_model=WorkerMemberOut)
async def add_worker_member(
    workerId: str, userId: str, session: SessionDep, caller: CallerDep
) -> WorkerMemberOut:
    """Invite a member of the organization to a (private) worker."""
    member, user = await service.add_member(session, caller, workerId, userId)
    return WorkerMemberOut(
        worker_id=member.worker_id,
        user_id=user.id,
        email=user.email,
        created_at=iso_z(member.created_at),
    )


@router.delete("/{workerId}/members/{userId}", response_model=MemberRemoved)
async def remove_worker_member(
    workerId: str, userId: str, session: SessionDep, caller: CallerDep
) -> MemberRemoved:
    """Withdraw a member's invitation to a worker."""
    await service.remove_member(session, caller, workerId, userId)
    return MemberRemoved(removed=True)
