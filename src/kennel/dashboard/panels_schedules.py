"""The worker page's Schedules panel: the list with next runs and histories, the New schedule
form with its preview, pause/resume, run now and cancel."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

from fastapi import APIRouter, Request
from starlette.responses import Response

from kennel.api.errors import ApiError
from kennel.auth import Caller
from kennel.core.parsers import parse_timezone
from kennel.core.runtime import Runtime, of_request
from kennel.dashboard import forms, panel_forms
from kennel.dashboard.auth import SignedIn, SignedInDep
from kennel.dashboard.confirm import require_confirmed
from kennel.dashboard.flash import flash_redirect
from kennel.dashboard.routes import render_worker_page
from kennel.dashboard.routing import DashboardRoute
from kennel.schedules import service
from kennel.schedules.repository import RunView, ScheduleRow
from kennel.schedules.schemas import Cron
from kennel.workers.repository import WorkerRow

__all__ = ["router", "schedules_panel"]

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)


class ScheduleView(NamedTuple):
    """A schedule as the panel lists it: its row, zone, next due times and latest firings."""

    row: ScheduleRow
    zone: str | None  # cron only
    upcoming: list[str]
    runs: list[RunView]
    run_count: int


def due_text(moment: datetime, zone: str | None = None) -> str:
    """`2030-01-31 08:00:00 UTC`, and the wall-clock time in `zone` when it is not UTC."""
    text = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if zone and zone != "UTC":
        local = moment.astimezone(parse_timezone(zone))
        text += f" ({local.strftime('%Y-%m-%d %H:%M')} {zone})"
    return text


# Past schedules listed under the live ones (the newest to end first); older ones are left out.
PAST_SHOWN = 20


async def _view(rt: Runtime, caller: Caller, row: ScheduleRow, *, past: bool) -> ScheduleView:
    zone = service.zone_of(rt, row) if row.kind == "cron" else None
    runs, total = await service.list_runs(rt, caller, row.worker_id, row.id, page=1)
    upcoming = [] if past else [due_text(due, zone) for due in service.upcoming_of(rt, row)]
    return ScheduleView(row, zone, upcoming, runs, total)


async def schedules_panel(rt: Runtime, caller: Caller, worker: WorkerRow) -> dict[str, Any]:
    """The panel's context: the worker's active schedules, the next due first, and those that
    ended (cancelled, or one-shots that fired) with their runs."""
    views = [
        await _view(rt, caller, row, past=False)
        for row in await service.list_schedules(rt, caller, worker.id)
    ]
    ended, ended_total = await service.list_finished_schedules(
        rt, caller, worker.id, limit=PAST_SHOWN
    )
    past = [await _view(rt, caller, row, past=True) for row in ended]
    return {
        "schedules": views,
        "past": past,
        "past_total": ended_total,
        "timezone": rt.settings.schedule_timezone,
        "kinds": panel_forms.KINDS,
        "min_interval": rt.settings.min_interval_seconds,
        # The script refreshes the page when the earliest of these comes due.
        "next_due": min(
            (v.row.next_run_at for v in views if not v.row.paused and v.row.next_run_at),
            default=None,
        ),
    }


def _back(worker_id: str, flash: str) -> Response:
    return flash_redirect(f"/workers/{worker_id}#panel-schedules", flash)


def _errors(exc: ApiError) -> dict[str, str]:
    return {exc.param or "schedules": exc.message}


@router.post("/workers/{worker_id}/schedules")
async def create_schedule(worker_id: str, request: Request, who: SignedInDep) -> Response:
    """Create a schedule from the New schedule form, or (`action=preview`) show the first five
    times it would be due, saving nothing."""
    rt = of_request(request)
    form = await forms.read_signed_form(request, who)
    preview = form.text("action") == "preview"
    try:
        data = panel_forms.schedule_create(form, rt.settings.schedule_timezone)
        if preview:
            times = await service.preview_schedule(rt, who.caller, worker_id, data)
        else:
            await service.create_schedule(rt, who.caller, worker_id, data)
    except ApiError as exc:
        if exc.status not in (400, 409):
            raise
        return await render_worker_page(
            request,
            who,
            worker_id,
            panel_errors=_errors(exc),
            panel_values=form.fields,
            status=exc.status,
        )
    if not preview:
        return _back(worker_id, "schedule-created")
    zone = None
    if isinstance(data.when, Cron):
        zone = data.when.timezone or rt.settings.schedule_timezone
    shown = {**form.fields, "preview": [due_text(due, zone) for due in times]}
    return await render_worker_page(request, who, worker_id, panel_values=shown)


async def _act(
    request: Request,
    who: SignedIn,
    worker_id: str,
    schedule_id: str,
    action: Callable[[Runtime, Caller], Awaitable[object]],
    flash: str,
    *,
    confirm: str | None = None,
) -> Response:
    """One of a listed schedule's buttons; a refusal is shown next to that schedule.
    `confirm`: the kind of question (`kennel.dashboard.confirm`) asked first."""
    rt = of_request(request)
    form = await forms.read_signed_form(request, who)
    if confirm is not None:
        found = await service.get_schedule(rt, who.caller, worker_id, schedule_id)
        require_confirmed(
            form,
            confirm,
            action=request.url.path,  # the answer posts here again
            back=f"/workers/{found.worker_id}#panel-schedules",
            subject=found.input,
        )
    try:
        await action(rt, who.caller)
    except ApiError as exc:
        if exc.status not in (400, 409):
            raise
        errors = {f"schedule-{schedule_id}": exc.message}
        return await render_worker_page(
            request, who, worker_id, panel_errors=errors, status=exc.status
        )
    return _back(worker_id, flash)


@router.post("/workers/{worker_id}/schedules/{schedule_id}/pause")
async def pause_schedule(
    worker_id: str, schedule_id: str, request: Request, who: SignedInDep
) -> Response:
    """Pause a schedule: it keeps its place and does not fire."""

    async def pause(rt: Runtime, caller: Caller) -> object:
        return await service.set_paused(rt, caller, worker_id, schedule_id, True)

    return await _act(request, who, worker_id, schedule_id, pause, "schedule-paused")


@router.post("/workers/{worker_id}/schedules/{schedule_id}/resume")
async def resume_schedule(
    worker_id: str, schedule_id: str, request: Request, who: SignedInDep
) -> Response:
    """Resume a schedule from its next due time after now."""

    async def resume(rt: Runtime, caller: Caller) -> object:
        return await service.set_paused(rt, caller, worker_id, schedule_id, False)

    return await _act(request, who, worker_id, schedule_id, resume, "schedule-resumed")


@router.post("/workers/{worker_id}/schedules/{schedule_id}/run")
async def run_schedule_now(
    worker_id: str, schedule_id: str, request: Request, who: SignedInDep
) -> Response:
    """Fire a schedule once now (a manual firing); the page then follows the turn."""

    async def run(rt: Runtime, caller: Caller) -> object:
        return await service.run_now(rt, caller, worker_id, schedule_id)

    return await _act(request, who, worker_id, schedule_id, run, "schedule-run")


@router.post("/workers/{worker_id}/schedules/{schedule_id}/cancel")
async def cancel_schedule(
    worker_id: str, schedule_id: str, request: Request, who: SignedInDep
) -> Response:
    """Cancel a schedule; a task it already started goes on."""

    async def cancel(rt: Runtime, caller: Caller) -> None:
        await service.cancel_schedule(rt, caller, worker_id, schedule_id)

    return await _act(
        request,
        who,
        worker_id,
        schedule_id,
        cancel,
        "schedule-cancelled",
        confirm="cancel-schedule",
    )
