"""HTTP routes of the Schedules API: parse, authorize, call the service, render."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from kennel.api.http import KennelRoute, page_count
from kennel.auth import CallerDep
from kennel.core.runtime import of_request
from kennel.core.timestamps import iso_z
from kennel.schedules import service
from kennel.schedules.render import schedule_out
from kennel.schedules.repository import RunView
from kennel.schedules.schemas import (
    ScheduleCancelled,
    ScheduleCreate,
    ScheduleDetail,
    ScheduleList,
    ScheduleOut,
    ScheduleRun,
    ScheduleRunList,
    ScheduleUpdate,
)

__all__ = ["router"]

router = APIRouter(
    prefix="/api/workers/{workerId}/schedules", tags=["Schedules"], route_class=KennelRoute
)


def _run(row: RunView) -> ScheduleRun:
    return ScheduleRun(
        id=row.id,
        schedule_id=row.schedule_id,
        due_at=iso_z(row.due_at),
        fired_at=iso_z(row.fired_at),
        outcome=row.outcome,
        task_id=row.task_public_id,
        task_status=row.task_status,
        error=row.error,
        missed_count=row.missed_count,
        fired_by=row.fired_by,
    )


@router.get("", response_model=ScheduleList)
async def list_schedules(workerId: str, request: Request, caller: CallerDep) -> ScheduleList:
    """List a worker's schedules, the next due first."""
    rt = of_request(request)
    rows = await service.list_schedules(rt, caller, workerId)
    return ScheduleList(
        worker_id=workerId,
        timezone=rt.settings.schedule_timezone,
        schedules=[schedule_out(rt, row) for row in rows],
    )


@router.post("", status_code=201, response_model=ScheduleOut)
async def create_schedule(
    workerId: str, body: ScheduleCreate, request: Request, caller: CallerDep
) -> ScheduleOut:
    """Schedule a task on a worker: once at a date, after a delay, by cron, or every N seconds."""
    rt = of_request(request)
    return schedule_out(rt, await service.create_schedule(rt, caller, workerId, body))


@router.get("/{scheduleId}", response_model=ScheduleDetail)
async def retrieve_schedule(
    workerId: str, scheduleId: str, request: Request, caller: CallerDep
) -> ScheduleDetail:
    """Retrieve a schedule with its next five due times (a Kennel extension)."""
    rt = of_request(request)
    row = await service.get_schedule(rt, caller, workerId, scheduleId)
    return ScheduleDetail(
        **schedule_out(rt, row).model_dump(),
        upcoming=[iso_z(due) for due in service.upcoming_of(rt, row)],
    )


@router.patch("/{scheduleId}", response_model=ScheduleOut)
async def update_schedule(
    workerId: str, scheduleId: str, body: ScheduleUpdate, request: Request, caller: CallerDep
) -> ScheduleOut:
    """Pause or resume a schedule (a Kennel extension)."""
    rt = of_request(request)
    row = await service.set_paused(rt, caller, workerId, scheduleId, body.paused)
    return schedule_out(rt, row)


@router.delete("/{scheduleId}", response_model=ScheduleCancelled)
async def cancel_schedule(
    workerId: str, scheduleId: str, request: Request, caller: CallerDep
) -> ScheduleCancelled:
    """Cancel a schedule; a task it already started goes on."""
    rt = of_request(request)
    await service.cancel_schedule(rt, caller, workerId, scheduleId)
    return ScheduleCancelled(cancelled=True)


@router.post("/{scheduleId}/run", response_model=ScheduleRun)
async def run_schedule_now(
    workerId: str, scheduleId: str, request: Request, caller: CallerDep
) -> ScheduleRun:
    """Fire a schedule once now, recorded as a manual firing (a Kennel extension)."""
    rt = of_request(request)
    run, started = await service.run_now(rt, caller, workerId, scheduleId)
    return ScheduleRun(
        id=run.id,
        schedule_id=run.schedule_id,
        due_at=iso_z(run.due_at),
        fired_at=iso_z(run.fired_at),
        outcome="manual",
        task_id=started.task.public_id,
        task_status=started.task.status,
        fired_by=run.fired_by,
    )


@router.get("/{scheduleId}/runs", response_model=ScheduleRunList)
async def list_schedule_runs(
    workerId: str,
    scheduleId: str,
    request: Request,
    caller: CallerDep,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> ScheduleRunList:
    """List a schedule's firings, newest first, 20 a page (a Kennel extension)."""
    rt = of_request(request)
    rows, total = await service.list_runs(rt, caller, workerId, scheduleId, page=page)
    pages = page_count(total, service.RUNS_PAGE_SIZE)
    return ScheduleRunList(
        runs=[_run(row) for row in rows], page=page, page_count=pages, total_count=total
    )
