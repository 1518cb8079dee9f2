"""HTTP routes of the Schedules API: parse, authorize, call the service, render."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from kennel.auth import CallerDep
from kennel.http import KennelRoute
from kennel.runtime import Runtime
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
from kennel.timestamps import iso_z

__all__ = ["router"]

router = APIRouter(
    prefix="/api/workers/{workerId}/schedules", tags=["Schedules"], route_class=KennelRoute
)


def _rt(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]  # set by create_app


def _run(row: RunView) -> ScheduleRun:
    return ScheduleRun(
        id=row.id,
        schedule_id=row.schedule_id,
        due_at=iso_z(row.due_at),
        fired_at=iso_z(row.fired_at),
        outcome=row.outcome,  # type: ignore[arg-type]  # the column holds the outcomes
        task_id=row.task_public_id,
        task_status=row.task_status,  # type: ignore[arg-type]  # and TaskStatus values
        error=row.error,
    )


@router.get("", response_model=ScheduleList)
async def list_schedules(workerId: str, request: Request, caller: CallerDep) -> ScheduleList:
    """List a worker's schedules, the next due first."""
    rt = _rt(request)
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
    rt = _rt(request)
    return schedule_out(rt, await service.create_schedule(rt, caller, workerId, body))


@router.get("/{scheduleId}", response_model=ScheduleDetail)
async def retrieve_schedule(
    workerId: str, scheduleId: str, request: Request, caller: CallerDep
) -> ScheduleDetail:
    """Retrieve a schedule with its next five due times (a Kennel extension)."""
    rt = _rt(request)
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
    rt = _rt(request)
    row = await service.set_paused(rt, caller, workerId, scheduleId, body.paused)
    return schedule_out(rt, row)


@router.delete("/{scheduleId}", response_model=ScheduleCancelled)
async def cancel_schedule(
    workerId: str, scheduleId: str, request: Request, caller: CallerDep
) -> ScheduleCancelled:
    """Cancel a schedule; a task it already started goes on."""
    await service.cancel_schedule(_rt(request), caller, workerId, scheduleId)
    return ScheduleCancelled(cancelled=True)


@router.post("/{scheduleId}/run", response_model=ScheduleRun)
async def run_schedule_now(
    workerId: str, scheduleId: str, request: Request, caller: CallerDep
) -> ScheduleRun:
    """Fire a schedule once now, recorded as a manual firing (a Kennel extension)."""
    run, started = await service.run_now(_rt(request), caller, workerId, scheduleId)
    return ScheduleRun(
        id=run.id,
        schedule_id=run.schedule_id,
        due_at=iso_z(run.due_at),
        fired_at=iso_z(run.fired_at),
        outcome="manual",
        task_id=started.task.public_id,
        task_status=started.task.status,  # type: ignore[arg-type]  # a TaskStatus value
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
    rows, pages, total = await service.list_runs(
        _rt(request), caller, workerId, scheduleId, page=page
    )
    return ScheduleRunList(
        runs=[_run(row) for row in rows], page=page, page_count=pages, total_count=total
    )
