"""What `/mcp`'s tools do: list them for a caller, and run one call to its result.

Every failure a caller can cause (bad arguments, an unknown tool or worker, a task in use) is a
tool result with `isError`, its message the REST API's, so the model reading it can correct
itself; nothing here answers with a protocol error or a 5xx.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from typing import Any

import mcp_types as types
from pydantic import BaseModel, ValidationError

from kennel.api.errors import ApiError, validation_error
from kennel.auth import Caller
from kennel.core.runtime import Runtime
from kennel.idempotency import from_header
from kennel.mcp.progress import Progress, follow_turn
from kennel.mcp.tools import (
    GENERAL,
    LIST_PAGE_SIZE,
    MAX_WORKER_TOOLS,
    CreateScheduleArguments,
    GetTaskArguments,
    ListSchedulesArguments,
    ListWorkersArguments,
    RunArguments,
    RunWorkerArguments,
    WorkerList,
    WorkerSummary,
    general_tools,
    tool_names,
    worker_tool,
)
from kennel.schedules import service as schedules
from kennel.schedules.render import schedule_out
from kennel.schedules.schemas import ScheduleCreate, ScheduleList
from kennel.tasks import service as tasks
from kennel.tasks.render import task_out, turn_out
from kennel.tasks.repository import IN_FLIGHT, TaskRow, TurnRow
from kennel.tasks.schemas import TaskCreate, TaskWithTurns
from kennel.tasks.starting import StartedTurn, TurnRequest, run_task
from kennel.workers import repository as workers_repo
from kennel.workers.render import worker_url
from kennel.workers.repository import WorkerRow

__all__ = ["call_tool", "list_tools", "start_turn"]

log = logging.getLogger("kennel.mcp")

# Where a result names the task it belongs to, for programs (a model reads the text).
META_TASK_ID = "kennel/taskId"
META_TURN_ID = "kennel/turnId"


async def _workers(rt: Runtime, caller: Caller) -> list[WorkerRow]:
    async with rt.db.read() as r:
        rows, _ = await workers_repo.page_visible(
            r, caller, visibility=None, page=1, size=MAX_WORKER_TOOLS
        )
    return rows


async def list_tools(rt: Runtime, caller: Caller) -> list[types.Tool]:
    """The general tools, then one per worker the caller may run."""
    names = tool_names(await _workers(rt, caller))
    return general_tools() + [worker_tool(name, worker) for name, worker in names.items()]


async def call_tool(
    rt: Runtime,
    caller: Caller,
    name: str,
    arguments: Mapping[str, Any] | None,
    progress: Progress | None = None,
) -> types.CallToolResult:
    """The result of one `tools/call`; every error the caller can cause as `isError`."""
    raw = dict(arguments or {})
    try:
        if name == "run_worker":
            run = RunWorkerArguments.model_validate(raw)
            return await _run(rt, caller, run.worker_id, run, name, progress)
        if name in GENERAL:
            return await _general(rt, caller, name, raw, progress)
        worker = tool_names(await _workers(rt, caller)).get(name)
        if worker is None:
            return tool_error(
                f"No tool named {name!r}: no worker you may run has that tool now (it may have"
                " been deleted or renamed). List the tools again, or call list_workers."
            )
        return await _run(rt, caller, worker.id, RunArguments.model_validate(raw), name, progress)
    except ValidationError as exc:
        return tool_error(validation_error(exc.errors()).message)
    except ApiError as exc:
        return tool_error(exc.message)
    except Exception:
        # A bug: logged with its traceback; the caller still gets a result, not a broken session.
        log.exception("MCP tool %s failed", name)
        return tool_error(f"Kennel failed to run {name!r}; the server's log says why.")


def tool_error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


def _structured(model: BaseModel) -> types.CallToolResult:
    document = model.model_dump(mode="json", by_alias=True)
    return types.CallToolResult(
        content=[types.TextContent(text=json.dumps(document, ensure_ascii=False))],
        structured_content=document,
    )


async def start_turn(
    rt: Runtime, caller: Caller, worker_id: str, args: RunArguments
) -> StartedTurn:
    """Start a turn on the worker as `POST /api/tasks` does, through the same `TurnRequest` and
    the same `Idempotency-Key` records: `idempotencyKey` is that header's value, and a key sent
    to both doors with the same request names the same turn."""
    fields = args.model_dump(by_alias=True, exclude_unset=True, exclude={"idempotency_key"})
    data = TaskCreate.model_validate({**fields, "workerId": worker_id})
    idempotency = from_header(
        args.idempotency_key,
        "create_task",
        lambda: {**data.model_dump(mode="json", by_alias=True, exclude_unset=True), "files": []},
    )
    return await run_task(rt, TurnRequest.from_create(data, caller), idempotency=idempotency)


async def _run(
    rt: Runtime,
    caller: Caller,
    worker_id: str,
    args: RunArguments,
    tool: str,
    progress: Progress | None,
) -> types.CallToolResult:
    started = await start_turn(rt, caller, worker_id, args)
    if started.turn.status in IN_FLIGHT:  # a key's repeat may find its turn ended already
        await follow_turn(rt, started.turn.id, rt.settings.task_wait_seconds, progress)
    task, turns, _ = await tasks.get_task(rt, caller, started.task.public_id)
    turn = next(t for t in turns if t.id == started.turn.id)
    return _answer(rt, started.worker, task, turn, tool)


def _answer(
    rt: Runtime, worker: WorkerRow, task: TaskRow, turn: TurnRow, tool: str
) -> types.CallToolResult:
    """A turn's answer as a tool result: its text, and its object for a worker with a schema."""
    meta = {META_TASK_ID: task.public_id, META_TURN_ID: turn.id}
    where = f"task {task.public_id!r}, turn {turn.seq}"
    if turn.status in IN_FLIGHT:
        wait = rt.settings.task_wait_seconds
        text = (
            f"The worker is still working on this ({where}) after {wait:g} s. Do not call"
            f" {tool} again for it: fetch the answer with get_task"
            f' {{"taskId": "{task.public_id}", "waitSeconds": {wait:g}}}.'
        )
        # A tool with an output schema must return its object on success (clients check), so
        # for one this is an error result; for others it is an answer like any other.
        return types.CallToolResult(
            content=[types.TextContent(text=text)],
            is_error=worker.output_schema is not None,
            meta=meta,
        )
    if turn.status != "completed":
        reason = turn.error_message or f"The turn ended {turn.status}."
        return types.CallToolResult(
            content=[types.TextContent(text=f"The worker's turn failed ({where}): {reason}")],
            is_error=True,
            meta=meta,
        )
    structured = turn.structured_output if worker.output_schema is not None else None
    if worker.output_schema is not None and structured is None:
        return types.CallToolResult(
            content=[types.TextContent(text=f"The turn gave no structured output ({where}).")],
            is_error=True,
            meta=meta,
        )
    text = turn.output_text or (json.dumps(structured, ensure_ascii=False) if structured else "")
    note = f"(Kennel {where}: pass taskId {task.public_id!r} to {tool} to continue it.)"
    return types.CallToolResult(
        content=[types.TextContent(text=text), types.TextContent(text=note)],
        structured_content=structured,
        meta=meta,
    )


async def _general(
    rt: Runtime, caller: Caller, name: str, raw: dict[str, Any], progress: Progress | None
) -> types.CallToolResult:
    if name == "list_workers":
        listed = ListWorkersArguments.model_validate(raw)
        return _structured(await _worker_list(rt, caller, listed.page))
    if name == "get_task":
        get = GetTaskArguments.model_validate(raw)
        return _structured(await _task(rt, caller, get, progress))
    if name == "list_schedules":
        of_worker = ListSchedulesArguments.model_validate(raw)
        rows = await schedules.list_schedules(rt, caller, of_worker.worker_id)
        return _structured(
            ScheduleList(
                worker_id=of_worker.worker_id,
                timezone=rt.settings.schedule_timezone,
                schedules=[schedule_out(rt, row) for row in rows],
            )
        )
    assert name == "create_schedule", name
    create = CreateScheduleArguments.model_validate(raw)
    data = ScheduleCreate(input=create.input, when=create.when, budget=create.budget)
    return _structured(
        schedule_out(rt, await schedules.create_schedule(rt, caller, create.worker_id, data))
    )


async def _worker_list(rt: Runtime, caller: Caller, page: int) -> WorkerList:
    tools = {worker.id: name for name, worker in tool_names(await _workers(rt, caller)).items()}
    async with rt.db.read() as r:
        rows, total = await workers_repo.page_visible(
            r, caller, visibility=None, page=page, size=LIST_PAGE_SIZE
        )
    return WorkerList(
        workers=[
            WorkerSummary(
                id=worker.id,
                tool=tools.get(worker.id),
                title=worker.title,
                summary=worker.summary,
                output_schema=worker.output_schema,
                url=worker_url(rt.settings, worker.id),
            )
            for worker in rows
        ],
        page=page,
        page_count=max(1, math.ceil(total / LIST_PAGE_SIZE)),
        total_count=total,
    )


async def _task(
    rt: Runtime, caller: Caller, args: GetTaskArguments, progress: Progress | None
) -> TaskWithTurns:
    task, turns, files = await tasks.get_task(rt, caller, args.task_id)
    wait = min(args.wait_seconds, rt.settings.task_wait_seconds)
    if wait > 0 and turns and turns[-1].status in IN_FLIGHT:
        await follow_turn(rt, turns[-1].id, wait, progress)
        task, turns, files = await tasks.get_task(rt, caller, args.task_id)
    by_turn: dict[str, list[Any]] = {}
    for row in files:
        by_turn.setdefault(row.turn_id, []).append(row)
    return TaskWithTurns(
        task=task_out(rt.settings, task),
        turns=[turn_out(rt.settings, task, t, by_turn.get(t.id, [])) for t in turns],
    )
