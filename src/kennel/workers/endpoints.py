"""HTTP routes of the Workers API: parse, authorize, call the service, render."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response

from kennel.api.errors import ApiError
from kennel.api.http import KennelRoute, file_download, json_response, page_count
from kennel.auth import CallerDep
from kennel.core.runtime import of_request
from kennel.core.timestamps import iso_z
from kennel.idempotency import IdempotencyKeyHeader, from_header
from kennel.workers import service
from kennel.workers.render import worker_email, worker_template
from kennel.workers.schemas import (
    DeleteWorkerResponse,
    MemberList,
    MemberRemoved,
    Visibility,
    WorkerCreate,
    WorkerEmail,
    WorkerList,
    WorkerMemberOut,
    WorkerTemplate,
    WorkerUpdate,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/workers", tags=["Workers"], route_class=KennelRoute)


@router.post("", status_code=201, response_model=WorkerTemplate)
async def create_worker(
    body: WorkerCreate,
    request: Request,
    caller: CallerDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Create a worker template."""
    rt = of_request(request)
    worker = await service.create_worker(
        rt.db,
        caller,
        body,
        model=rt.model,
        wait_seconds=rt.settings.instructions_wait_seconds,
        idempotency=from_header(
            idempotency_key,
            "create_worker",
            lambda: body.model_dump(mode="json", by_alias=True, exclude_unset=True),
        ),
    )
    return json_response(worker_template(rt.settings, worker), status_code=201)


@router.get("", response_model=WorkerList)
async def list_workers(
    request: Request,
    caller: CallerDep,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    visibility: Annotated[Visibility | None, Query()] = None,
) -> WorkerList:
    """List the workers you can see, newest first, 20 a page (a Kennel extension)."""
    rt = of_request(request)
    rows, total = await service.list_workers(rt.db, caller, visibility=visibility, page=page)
    return WorkerList(
        workers=[worker_template(rt.settings, w) for w in rows],
        page=page,
        page_count=page_count(total, service.PAGE_SIZE),
        total_count=total,
    )


@router.get("/{workerId}/files/{path:path}", response_class=FileResponse)
async def download_worker_file(
    workerId: str, path: str, request: Request, caller: CallerDep
) -> Response:
    """Download a file from the worker's workspace."""
    rt = of_request(request)
    worker = await service.get_worker(rt.db, caller, workerId)
    workspace = rt.workspace(worker.id)
    found = await workspace.file(path)
    if found is None:
        raise ApiError(404, f"No file {path!r} in this worker's workspace.")
    return file_download(workspace, found)


@router.patch("/{workerId}", response_model=WorkerTemplate)
async def update_worker(
    workerId: str, body: WorkerUpdate, request: Request, caller: CallerDep
) -> WorkerTemplate:
    """Update a worker template."""
    rt = of_request(request)
    worker = await service.update_worker(rt.db, caller, workerId, body)
    return worker_template(rt.settings, worker)


@router.delete("/{workerId}", response_model=DeleteWorkerResponse)
async def delete_worker(workerId: str, request: Request, caller: CallerDep) -> DeleteWorkerResponse:
    """Delete a worker template, aborting its running tasks."""
    rt = of_request(request)
    await service.delete_worker(rt.db, caller, workerId)
    return DeleteWorkerResponse(deleted=True)


@router.get("/{workerId}/email", response_model=WorkerEmail)
async def retrieve_worker_email(workerId: str, request: Request, caller: CallerDep) -> WorkerEmail:
    """Retrieve a worker's inbound e-mail address."""
    rt = of_request(request)
    worker = await service.get_worker(rt.db, caller, workerId)
    return WorkerEmail(email=worker_email(rt.settings, worker))


@router.get("/{workerId}/members", response_model=MemberList)
async def list_worker_members(workerId: str, request: Request, caller: CallerDep) -> MemberList:
    """List the members invited to a worker."""
    rt = of_request(request)
    worker, rows = await service.list_members(rt.db, caller, workerId)
    return MemberList(worker_id=worker.id, members=[_member(m) for m in rows])


@router.put("/{workerId}/members/{userId}", response_model=WorkerMemberOut)
async def add_worker_member(
    workerId: str, userId: str, request: Request, caller: CallerDep
) -> WorkerMemberOut:
    """Invite a member of the organization to a (private) worker."""
    rt = of_request(request)
    return _member(await service.add_member(rt.db, caller, workerId, userId))


@router.delete("/{workerId}/members/{userId}", response_model=MemberRemoved)
async def remove_worker_member(
    workerId: str, userId: str, request: Request, caller: CallerDep
) -> MemberRemoved:
    """Withdraw a member's invitation to a worker."""
    rt = of_request(request)
    await service.remove_member(rt.db, caller, workerId, userId)
    return MemberRemoved(removed=True)


def _member(member: Any) -> WorkerMemberOut:
    return WorkerMemberOut(
        worker_id=member.worker_id,
        user_id=member.user_id,
        email=member.email,
        created_at=iso_z(member.created_at),
    )
