"""The dashboard's pages: workers, a worker (its template, live state, runs, history), a task.

Every handler calls the same services as the API, with the signed-in user as the caller, so
the same visibility rules hold and another organization's ids are the same 404.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import Response

from kennel.api.errors import ApiError
from kennel.api.http import file_download, page_count
from kennel.auth import Caller
from kennel.core.runtime import Runtime, of_request
from kennel.dashboard import forms
from kennel.dashboard.auth import SignedIn, SignedInDep
from kennel.dashboard.confirm import require_confirmed
from kennel.dashboard.conversation import conversation
from kennel.dashboard.filters import (
    TASK_STATUSES,
    TRIGGERS,
    VISIBILITIES,
    TaskSearch,
    WorkerSearch,
)
from kennel.dashboard.flash import flash_redirect
from kennel.dashboard.panels import load_worker_panels
from kennel.dashboard.routing import DashboardRoute, page_number
from kennel.dashboard.templating import render
from kennel.dashboard.usage import usage_chart
from kennel.mcp_servers import service as mcp_servers_service
from kennel.tasks import service as tasks_service
from kennel.tasks.repository import TurnFileRow
from kennel.tasks.starting import TurnRequest, run_task
from kennel.tasks.streaming import sse_response
from kennel.workers import service as workers_service
from kennel.workers.render import worker_email
from kennel.workers.schemas import WorkerState

__all__ = ["render_worker_page", "router"]

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

_BUDGETS = ("low", "standard", "high", "unlimited")
# A downloaded file is never a page of this site: no script, no styles, no frames, even if a
# browser were to show it instead of saving it.
_FILE_CSP = "default-src 'none'; sandbox; frame-ancestors 'none'"


def _base(who: SignedIn) -> dict[str, Any]:
    return {"signed_in": who, "csrf": who.csrf}


# -- workers --------------------------------------------------------------------------------


@router.get("/")
@router.get("/workers")
async def workers_page(
    request: Request,
    who: SignedInDep,
    page: str | None = None,
    q: str | None = None,
    visibility: str | None = None,
) -> Response:
    """The workers the user can see (`q` searches titles and summaries, `visibility` filters),
    and the New worker form."""
    search = WorkerSearch.of(q, visibility)
    return await _workers_page(request, who, page=page_number(page), search=search)


async def _workers_page(
    request: Request,
    who: SignedIn,
    *,
    page: int = 1,
    search: WorkerSearch | None = None,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    rt = of_request(request)
    search = search or WorkerSearch.of(None, None)
    rows, total = await workers_service.list_workers(
        rt.db, who.caller, visibility=search.visibility, page=page, search=search.q
    )
    activity = await tasks_service.worker_activity(rt, who.caller, [w.id for w in rows])
    context = {
        **_base(who),
        "workers": rows,
        "activity": activity,
        "page": page,
        "page_count": page_count(total, workers_service.PAGE_SIZE),
        "total": total,
        "search": search,
        "visibilities": VISIBILITIES,
        "errors": errors or {},
        "values": values or {},
    }
    return render("workers.html", context, status_code=status)


@router.post("/workers")
async def create_worker(request: Request, who: SignedInDep) -> Response:
    """Create a worker from the New worker form."""
    rt = of_request(request)
    form = await forms.read_signed_form(request, who)
    try:
        data = forms.worker_create(form)
        worker = await workers_service.create_worker(
            rt.db,
            who.caller,
            data,
            model=rt.model,
            wait_seconds=rt.settings.instructions_wait_seconds,
        )
    except ApiError as exc:
        if exc.status not in (400, 502):
            raise
        errors = forms.field_errors(exc)
        return await _workers_page(
            request, who, errors=errors, values=form.fields, status=exc.status
        )
    return flash_redirect(f"/workers/{worker.id}", "worker-created")


# -- one worker -----------------------------------------------------------------------------


@router.get("/workers/{worker_id}")
async def worker_page(
    worker_id: str,
    request: Request,
    who: SignedInDep,
    page: str | None = None,
    q: str | None = None,
    status: str | None = None,
    trigger: str | None = None,
) -> Response:
    """A worker: its template, live state, the Run form, its task history (`q` searches
    titles, `status` and `trigger` filter) and usage."""
    search = TaskSearch.of(q, status, trigger)
    return await render_worker_page(
        request, who, worker_id, page=page_number(page), task_search=search
    )


async def render_worker_page(
    request: Request,
    who: SignedIn,
    worker_id: str,
    *,
    page: int = 1,
    task_search: TaskSearch | None = None,
    template_errors: dict[str, str] | None = None,
    template_values: dict[str, str] | None = None,
    run_errors: dict[str, str] | None = None,
    run_values: dict[str, str] | None = None,
    panel_errors: dict[str, str] | None = None,
    panel_values: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    """The worker's page; a refused form shows it again with its errors and what was typed
    (the panels' routes pass `panel_errors` and `panel_values`, which their templates read)."""
    rt = of_request(request)
    caller = who.caller
    state = await tasks_service.worker_state(rt, caller, worker_id)
    worker = await workers_service.get_worker(rt.db, caller, worker_id)
    search = task_search or TaskSearch.of(None, None, None)
    history, total = await tasks_service.list_tasks(
        rt,
        caller,
        worker_id=worker.id,
        status=search.status,
        page=page,
        search=search.q,
        triggered_by=search.trigger,
    )
    usage = usage_chart(await tasks_service.credits_per_day(rt, caller, worker.id))
    panels = await load_worker_panels(rt, caller, worker)
    schema = _schema_text(worker.output_schema)
    template_form = template_values or {
        "title": worker.title,
        "summary": worker.summary,
        "instructions": worker.instructions,
        "outputSchema": schema,
        "visibility": worker.visibility,
        "mcpServers": ", ".join(worker.mcp_servers),
    }
    context = {
        **_base(who),
        "worker": worker,
        "state": state,
        "email": worker_email(rt.settings, worker),
        "is_creator": worker.user_id == caller.user_id,
        "conversation": conversation(state.messages),
        "history": history,
        "history_total": total,
        "task_search": search,
        "task_statuses": TASK_STATUSES,
        "triggers": TRIGGERS,
        "turn_started": await _turn_started(rt, caller, state),
        "page": page,
        "page_count": page_count(total, tasks_service.PAGE_SIZE),
        "usage": usage,
        "budgets": _BUDGETS,
        "template_form": template_form,
        "mcp_server_names": [s.name for s in await mcp_servers_service.list_servers(rt.db, caller)],
        "template_errors": template_errors or {},
        "run_form": run_values or {},
        "run_errors": run_errors or {},
        "panel_errors": panel_errors or {},
        "panel_values": panel_values or {},
        **panels,
    }
    return render("worker.html", context, status_code=status)


async def _turn_started(rt: Runtime, caller: Caller, state: WorkerState) -> datetime | None:
    """When the turn in flight began (or was asked for, while it waits): the page's clock
    counts from there."""
    task_id = state.metadata.get("taskId")
    if not state.running or not task_id:
        return None
    try:
        _, turns, _ = await tasks_service.get_task(rt, caller, str(task_id))
    except ApiError:  # archived or gone meanwhile: the clock counts from the page's opening
        return None
    latest = turns[-1] if turns else None
    return (latest.started_at or latest.created_at) if latest else None


def _schema_text(schema: dict[str, Any] | None) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) if schema is not None else ""


@router.post("/workers/{worker_id}/template")
async def save_template(worker_id: str, request: Request, who: SignedInDep) -> Response:
    """Save the template form (only what changed: the same instructions are no new version)."""
    rt = of_request(request)
    form = await forms.read_signed_form(request, who)
    worker = await workers_service.get_worker(rt.db, who.caller, worker_id)
    try:
        changes = forms.worker_update(form, worker)
        await workers_service.update_worker(rt.db, who.caller, worker.id, changes)
    except ApiError as exc:
        if exc.status not in (400, 403):
            raise
        return await render_worker_page(
            request,
            who,
            worker.id,
            template_errors=forms.field_errors(exc),
            template_values=form.fields,
            status=exc.status,
        )
    return flash_redirect(f"/workers/{worker.id}#template", "template-saved")


@router.post("/workers/{worker_id}/delete")
async def delete_worker(worker_id: str, request: Request, who: SignedInDep) -> Response:
    """Delete the worker (its creator only): its schedules are cancelled, its webhook removed."""
    rt = of_request(request)
    form = await forms.read_signed_form(request, who)
    worker = await workers_service.get_worker(rt.db, who.caller, worker_id)
    require_confirmed(
        form,
        "delete-worker",
        action=f"/workers/{worker.id}/delete",
        back=f"/workers/{worker.id}#template",
        subject=worker.title,
    )
    await workers_service.delete_worker(rt.db, who.caller, worker.id)
    return flash_redirect("/workers", "worker-deleted")


@router.post("/workers/{worker_id}/run")
async def run(worker_id: str, request: Request, who: SignedInDep) -> Response:
    """Start a task turn from the Run form (input, budget, files); back to the worker's page,
    which follows the turn as it runs."""
    rt = of_request(request)
    form = await forms.read_signed_form(request, who, files=True)
    try:
        data = forms.task_create(form, worker_id)
        turn = TurnRequest.from_create(data, who.caller, origin="ui", uploads=form.uploads)
        started = await run_task(rt, turn)
    except ApiError as exc:
        if exc.status not in (400, 409):
            raise
        return await render_worker_page(
            request,
            who,
            worker_id,
            run_errors=forms.field_errors(exc),
            run_values=form.fields,
            status=exc.status,
        )
    return flash_redirect(f"/workers/{started.worker.id}#state", "task-started")


@router.get("/workers/{worker_id}/events")
async def worker_events(worker_id: str, request: Request, who: SignedInDep) -> Response:
    """The worker's event stream, as `GET /api/workers/{id}?stream=true`, for the page's script."""
    rt = of_request(request)
    events, ids = await tasks_service.worker_events(rt, who.caller, worker_id)
    return sse_response(events, ids=ids)


@router.get("/workers/{worker_id}/files/{path:path}")
async def download_file(worker_id: str, path: str, request: Request, who: SignedInDep) -> Response:
    """Download a file of the worker's workspace (the API's checks, the session's user)."""
    rt = of_request(request)
    worker = await workers_service.get_worker(rt.db, who.caller, worker_id)
    workspace = rt.workspace(worker.id)
    found = await workspace.file(path)
    if found is None:
        raise ApiError(404, f"No file {path!r} in this worker's workspace.")
    return file_download(workspace, found, headers={"Content-Security-Policy": _FILE_CSP})


# -- tasks ----------------------------------------------------------------------------------


@router.get("/tasks/{task_id}")
async def task_page(task_id: str, request: Request, who: SignedInDep) -> Response:
    """A task: its turns (input, answer, tokens, credits, duration, files) and Archive."""
    rt = of_request(request)
    task, turns, files = await tasks_service.get_task(rt, who.caller, task_id)
    worker = await workers_service.get_worker(rt.db, who.caller, task.worker_id)
    by_turn: dict[str, list[TurnFileRow]] = defaultdict(list)
    for row in files:
        by_turn[row.turn_id].append(row)
    context = {
        **_base(who),
        "task": task,
        "turns": turns,
        "files": by_turn,
        "worker": worker,
        "may_archive": worker.user_id == who.caller.user_id and task.archived_at is None,
    }
    return render("task.html", context)


@router.post("/tasks/{task_id}/archive")
async def archive_task(task_id: str, request: Request, who: SignedInDep) -> Response:
    """Archive the task (the worker's creator only), aborting its turn in flight."""
    rt = of_request(request)
    form = await forms.read_signed_form(request, who)
    task, _, _ = await tasks_service.get_task(rt, who.caller, task_id)
    here = f"/tasks/{quote(task.public_id, safe='')}"
    require_confirmed(form, "archive-task", action=f"{here}/archive", back=here, subject=task.title)
    await tasks_service.archive_task(rt, who.caller, task.public_id)
    return flash_redirect(f"/tasks/{quote(task.public_id, safe='')}", "task-archived")
