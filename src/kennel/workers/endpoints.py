"""HTTP routes of the Workers API: parse, authorize, call the service, render."""

from __future__ import annotations

from fastapi import APIRouter, Request

from kennel.auth import CallerDep
from kennel.db import SessionDep
from kennel.timestamps import iso_z
from kennel.workers import service
from kennel.workers.render import pending_state, worker_email, worker_template
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

__all__ = ["router"]

router = APIRouter(prefix="/api/workers", tags=["Workers"])


@router.post("", status_code=201, response_model=WorkerTemplate, response_model_by_alias=True)
async def create_worker(
    body: WorkerCreate, request: Request, session: SessionDep, caller: CallerDep
) -> WorkerTemplate:
    """Create a worker template."""
    worker = await service.create_worker(session, caller, body, model=request.app.state.model)
    return worker_template(request.app.state.settings, worker)


@router.get("/{workerId}", response_model=WorkerState)
async def retrieve_worker(
    workerId: str, request: Request, session: SessionDep, caller: CallerDep
) -> WorkerState:
    """Retrieve a worker: its live state as of its most recent task."""
    worker = await service.get_worker(session, caller, workerId)
    return pending_state(request.app.state.settings, worker)


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
    """Delete a worker template."""
    await service.delete_worker(session, caller, workerId)
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
