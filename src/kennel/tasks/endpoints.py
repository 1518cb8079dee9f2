"""HTTP routes of the Tasks API: parse, authorize, call the service, render."""

from __future__ import annotations

import email.message
import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from kennel.api.errors import ApiError, BadRequest, validation_error
from kennel.api.http import KennelRoute, decode_json_body, json_response, page_count, read_form
from kennel.auth import Caller, CallerDep
from kennel.core.runtime import Runtime, of_request
from kennel.idempotency import IdempotencyKeyHeader, from_header
from kennel.tasks import service
from kennel.tasks.render import task_out, turn_out
from kennel.tasks.schemas import (
    ArchiveTaskResponse,
    TaskCreate,
    TaskList,
    TaskStatus,
    TaskWithTurns,
    TurnList,
    TurnOut,
)
from kennel.tasks.starting import TurnRequest, Upload, run_task
from kennel.tasks.streaming import SSE_RESPONSE, id_headers, sse_response
from kennel.workers.schemas import WorkerState

__all__ = ["router", "worker_router"]

router = APIRouter(prefix="/api/tasks", tags=["Tasks"], route_class=KennelRoute)
# A worker's live state is its latest task's: it is served from here, under the workers' path.
worker_router = APIRouter(prefix="/api/workers", tags=["Workers"], route_class=KennelRoute)

_TASK_CREATE_SCHEMA = TaskCreate.model_json_schema(by_alias=True)
_MULTIPART_SCHEMA = {
    "type": "object",
    "properties": {
        **_TASK_CREATE_SCHEMA["properties"],
        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
    },
    "required": ["input"],
    "additionalProperties": False,
}


_FORM_BOOLEANS = {"true": True, "false": False}


def _media_type(request: Request) -> str:
    header = request.headers.get("content-type")
    if not header:
        return ""
    message = email.message.Message()
    message["content-type"] = header
    return message.get_content_type()


async def _parse(request: Request) -> tuple[TaskCreate, list[Upload]]:
    media_type = _media_type(request)
    uploads: list[Upload] = []
    raw: Any
    if media_type == "multipart/form-data":
        form = await read_form(request, max_files=100, max_fields=20)
        fields: dict[str, Any] = {}
        try:
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    if name != "files":
                        raise BadRequest("Files go in parts named 'files'.", param=name)
                    uploads.append(Upload(value.filename or "upload", await value.read()))
                elif name == "files":
                    raise BadRequest("A 'files' part must be a file.", param="files")
                else:
                    fields[name] = value
        finally:
            await form.close()  # spooled temporary files
        # Every form field is text: the booleans' words become booleans, anything else stays
        # text and is refused like a string in JSON.
        raw = {k: _FORM_BOOLEANS.get(v, v) if k == "stream" else v for k, v in fields.items()}
    elif media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        raw = decode_json_body(await request.body() or b"null")
        if not isinstance(raw, dict):
            raise BadRequest("The request body must be a JSON object.")
    else:
        raise ApiError(415, "Send application/json or multipart/form-data.")
    try:
        return TaskCreate.model_validate(raw), uploads
    except ValidationError as exc:
        raise validation_error(exc.errors()) from None


@router.post(
    "",
    response_model=WorkerState,
    responses={
        200: SSE_RESPONSE,
        415: {"description": "Neither JSON nor multipart."},
        429: {
            "description": "This process is already taking in as many tasks as it can; "
            "nothing was written. Retry after `Retry-After` seconds (a Kennel extension).",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        },
    },
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
async def create_task(
    request: Request,
    caller: CallerDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Any:
    """Run a task turn on a worker: wait for it, or stream it with `stream: true`."""
    rt = of_request(request)
    data, uploads = await _parse(request)
    idempotency = from_header(
        idempotency_key,
        "create_task",
        lambda: {
            **data.model_dump(mode="json", by_alias=True, exclude_unset=True),
            "files": [[u.filename, hashlib.sha256(u.data).hexdigest()] for u in uploads],
        },
    )
    turn = TurnRequest.from_create(data, caller, uploads=uploads)
    started = await run_task(rt, turn, idempotency=idempotency)
    ids = {
        "taskId": started.task.public_id,
        "turnId": started.turn.id,
        "workerId": started.worker.id,
    }
    if data.stream:
        return sse_response(service.turn_events(rt, started.turn.id), ids=ids)
    state = await service.state_after_turn(rt, started)
    response = state.__pydantic_serializer__.to_json(state, by_alias=True)
    headers = id_headers(ids)
    return Response(response, media_type="application/json", headers=headers)


@router.get("", response_model=TaskList)
async def list_tasks(
    request: Request,
    caller: CallerDep,
    worker_id: Annotated[str | None, Query(alias="workerId", max_length=128)] = None,
    status: Annotated[TaskStatus | None, Query()] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> TaskList:
    """List tasks, newest first, 20 a page."""
    rt = of_request(request)
    rows, total = await service.list_tasks(
        rt, caller, worker_id=worker_id, status=status, page=page
    )
    return TaskList(
        tasks=[task_out(rt.settings, t) for t in rows],
        page=page,
        page_count=page_count(total, service.PAGE_SIZE),
        total_count=total,
    )


async def _turns(rt: Runtime, caller: Caller, public_id: str) -> tuple[Any, list[TurnOut]]:
    task, turns, files = await service.get_task(rt, caller, public_id)
    by_turn: dict[str, list[Any]] = {}
    for row in files:
        by_turn.setdefault(row.turn_id, []).append(row)
    return task, [turn_out(rt.settings, task, t, by_turn.get(t.id, [])) for t in turns]


@router.get("/{taskId}", response_model=TaskWithTurns)
async def retrieve_task(taskId: str, request: Request, caller: CallerDep) -> TaskWithTurns:
    """Retrieve a task and its turns."""
    rt = of_request(request)
    task, turns = await _turns(rt, caller, taskId)
    return TaskWithTurns(task=task_out(rt.settings, task), turns=turns)


@router.get("/{taskId}/turns", response_model=TurnList)
async def list_turns(taskId: str, request: Request, caller: CallerDep) -> TurnList:
    """List a task's turns in order, each with the files it published."""
    rt = of_request(request)
    task, turns = await _turns(rt, caller, taskId)
    return TurnList(task_id=task.public_id, items=turns)


@router.delete("/{taskId}", response_model=ArchiveTaskResponse)
async def archive_task(taskId: str, request: Request, caller: CallerDep) -> ArchiveTaskResponse:
    """Archive a task, aborting its turn in flight."""
    rt = of_request(request)
    await service.archive_task(rt, caller, taskId)
    return ArchiveTaskResponse(archived=True)


@worker_router.get("/{workerId}", response_model=WorkerState, responses={200: SSE_RESPONSE})
async def retrieve_worker(
    workerId: str,
    request: Request,
    caller: CallerDep,
    stream: Annotated[bool, Query(description="Answer with an SSE stream instead.")] = False,
    task_id: Annotated[
        str | None,
        Query(
            alias="taskId",
            max_length=128,
            description="As of this task of the worker, not its most recent one.",
        ),
    ] = None,
) -> Any:
    """Retrieve a worker: its live state as of its most recent task (or of `taskId`)."""
    rt = of_request(request)
    if not stream:
        return json_response(await service.worker_state(rt, caller, workerId, task_id=task_id))
    events, ids = await service.worker_events(rt, caller, workerId, task_id=task_id)
    return sse_response(events, ids=ids)
