"""HTTP routes of the Tasks API: parse, authorize, call the service, render."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from kennel.auth import Caller, CallerDep
from kennel.db import SessionDep
from kennel.errors import ApiError, BadRequest, NotFound
from kennel.tasks import service
from kennel.tasks.render import task_out, turn_out
from kennel.tasks.repository import FILES_OF_TASK, TURN_ROWS, VISIBLE_TASK_ROW, TaskRepository
from kennel.tasks.schemas import (
    ArchiveTaskResponse,
    TaskCreate,
    TaskList,
    TaskStatus,
    TaskWithTurns,
    TurnList,
    TurnOut,
)
from kennel.tasks.streaming import live_events, sse_response
from kennel.workers.repository import WORKER_ROW, caller_params
from kennel.workers.schemas import WorkerState

__all__ = ["router"]

router = APIRouter(prefix="/api/tasks", tags=["Tasks"])

_TASK_CREATE_SCHEMA = TaskCreate.model_json_schema(by_alias=True)
_MULTIPART_SCHEMA = {
    "type": "object",
    "properties": {
        **_TASK_CREATE_SCHEMA["properties"],
        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
    },
    "required": ["input"],
}
_SSE = {"text/event-stream": {"schema": {"type": "string"}}}


async def _parse(request: Request) -> tuple[TaskCreate, list[service.Upload]]:
    content_type = request.headers.get("content-type", "")
    uploads: list[service.Upload] = []
    if content_type.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=100, max_fields=20)
        except Exception as exc:  # malformed multipart, too many parts
            raise BadRequest(f"Malformed multipart body: {exc}") from None
        fields: dict[str, Any] = {}
        try:
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    if name != "files":
                        raise BadRequest("Files go in parts named 'files'.", param=name)
                    uploads.append(service.Upload(value.filename or "upload", await value.read()))
                elif name == "files":
                    raise BadRequest("A 'files' part must be a file.", param="files")
                else:
                    fields[name] = value
        finally:
            await form.close()  # spooled temporary files
        raw: Any = fields  # pydantic reads "true"/"false"/"1"/"0" and refuses anything else
    elif content_type.startswith("application/json") or not content_type:
        try:
            raw = json.loads(await request.body() or b"null")
        except ValueError:
            raise BadRequest("The request body is not valid JSON.") from None
        if not isinstance(raw, dict):
            raise BadRequest("The request body must be a JSON object.")
    else:
        raise ApiError(415, "Send application/json or multipart/form-data.")
    try:
        return TaskCreate.model_validate(raw), uploads
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        message = (
            f"Unknown field {param!r}."
            if first["type"] == "extra_forbidden"
            else f"Field {param!r} is required."
            if first["type"] == "missing"
            else f"{param}: {first['msg']}"
        )
        raise BadRequest(message, param=param) from None


@router.post(
    "",
    response_model=WorkerState,
    responses={200: {"content": _SSE, "description": "The worker, or an SSE stream."}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _TASK_CREATE_SCHEMA},
                "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
            },
        }
    },
)
async def create_task(request: Request, caller: CallerDep) -> Any:
    """Run a task turn on a worker: wait for it, or stream it with `stream: true`."""
    data, uploads = await _parse(request)
    state = request.app.state
    settings = state.settings
    started = await service.start_turn(
        state.db.writer, caller, data, settings=settings, model=state.model, uploads=uploads
    )
    # Committed by now: the turn's rows exist before its workflow can look for them.
    await service.enqueue_turn(started.turn.id)
    if data.stream:
        return sse_response(
            live_events(started.turn.id, polling_seconds=settings.queue_polling_seconds)
        )
    await service.wait_for_turn(started.turn.id, settings.task_wait_seconds)
    async with request.app.state.db.reader.snapshot() as read:
        worker = await read.first(WORKER_ROW, {"worker_id": started.worker.id})
        assert worker is not None
        # As of the task this call started: with several tasks of the worker in flight, its
        # latest task may be another caller's.
        return await service.load_worker_state(read, settings, worker, task_id=started.task.id)


@router.get("", response_model=TaskList)
async def list_tasks(
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    worker_id: Annotated[str | None, Query(alias="workerId", max_length=128)] = None,
    status: Annotated[TaskStatus | None, Query()] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> TaskList:
    """List tasks, newest first, 20 a page."""
    tasks, total = await TaskRepository(session).page(
        caller, worker_id=worker_id, status=status, page=page, size=service.PAGE_SIZE
    )
    settings = request.app.state.settings
    return TaskList(
        tasks=[task_out(settings, t) for t in tasks],
        page=page,
        page_count=service.page_count(total),
        total_count=total,
    )


async def _turns(request: Request, caller: Caller, task_id: str) -> tuple[Any, list[TurnOut]]:
    # Clients poll these routes: Core reads in one snapshot, no ORM session (kennel.reads).
    async with request.app.state.db.reader.snapshot() as read:
        params = {"task_id": task_id, **caller_params(caller)}
        task = await read.first(VISIBLE_TASK_ROW, params)
        if task is None:
            raise NotFound("task", task_id)
        turns = await read.all(TURN_ROWS, {"task_id": task.id})
        files: dict[str, list[Any]] = {}
        for row in await read.all(FILES_OF_TASK, {"task_id": task.id}):
            files.setdefault(row.turn_id, []).append(row)
    settings = request.app.state.settings
    return task, [turn_out(settings, task.worker_id, t, files.get(t.id, [])) for t in turns]


@router.get("/{taskId}", response_model=TaskWithTurns)
async def retrieve_task(taskId: str, request: Request, caller: CallerDep) -> TaskWithTurns:
    """Retrieve a task and its turns."""
    task, turns = await _turns(request, caller, taskId)
    return TaskWithTurns(task=task_out(request.app.state.settings, task), turns=turns)


@router.get("/{taskId}/turns", response_model=TurnList)
async def list_turns(taskId: str, request: Request, caller: CallerDep) -> TurnList:
    """List a task's turns in order, each with the files it published."""
    task, turns = await _turns(request, caller, taskId)
    return TurnList(task_id=task.id, items=turns)


@router.delete("/{taskId}", response_model=ArchiveTaskResponse)
async def archive_task(taskId: str, session: SessionDep, caller: CallerDep) -> ArchiveTaskResponse:
    """Archive a task, aborting its turn in flight."""
    aborted = await service.archive_task(session, caller, taskId)
    await session.commit()
    await service.cancel_workflows(aborted)
    return ArchiveTaskResponse(archived=True)
