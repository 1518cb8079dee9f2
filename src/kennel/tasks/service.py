"""Decisions about tasks: starting turns (new tasks, follow-ups), waiting, archiving, aborting."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dbos import DBOS, SetWorkflowID
from dbos._error import DBOSAwaitedWorkflowCancelledError
from pydantic_ai.models import Model
from sqlalchemy.ext.asyncio import AsyncSession

from kennel import runtime
from kennel.auth import Caller
from kennel.durable import TURN_QUEUE
from kennel.errors import BadRequest, Conflict, Forbidden, NotFound
from kennel.ids import new_id
from kennel.models import Task, Turn, Worker
from kennel.models.base import new_row
from kennel.reads import Snapshot
from kennel.settings import Settings
from kennel.tasks import repository, waiters
from kennel.tasks.render import worker_state
from kennel.tasks.repository import (
    IN_FLIGHT,
    LATEST_TASK_ROW,
    TASK_ROW,
    TURN_ROWS,
    VISIBLE_TASK_ROW,
    TaskRepository,
)
from kennel.tasks.schemas import TaskCreate
from kennel.workers import service as workers
from kennel.workers.repository import WORKER_ROW, caller_params
from kennel.workers.schemas import WorkerCreate, WorkerState
from kennel.workspaces import Workspace, WorkspaceError, has_workspace
from kennel.writes import Writer

__all__ = [
    "PAGE_SIZE",
    "StartedTurn",
    "Upload",
    "abort_turns",
    "archive_task",
    "cancel_workflows",
    "enqueue_turn",
    "get_task",
    "latest_turns_for_stream",
    "load_worker_state",
    "start_turn",
    "wait_for_turn",
]

log = logging.getLogger("kennel.tasks")

PAGE_SIZE = 20


@dataclass(frozen=True, slots=True)
class Upload:
    filename: str
    data: bytes


@dataclass(frozen=True, slots=True)
class StartedTurn:
    """Rows as Core rows or new rows (attributes named like the ORM's)."""

    worker: Any
    task: Any
    turn: Any


def _title(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else "Task"
    return first if len(first) <= 80 else first[:79] + "…"


async def start_turn(
    writer: Writer,
    caller: Caller,
    data: TaskCreate,
    *,
    settings: Settings,
    model: Model,
    uploads: Sequence[Upload] = (),
    triggered_by: str = "api",
) -> StartedTurn:
    """Record a new turn (and task, and worker, when new) in one transaction; the caller
    enqueues it once this returns, when the rows are committed."""
    turn_id = new_id("trn")
    async with writer.transaction() as tx:
        task: Any = None
        if data.task_id is not None:
            task = await tx.first(TASK_ROW, {"task_id": data.task_id})
        if task is not None:
            params = {"task_id": task.id, **caller_params(caller)}
            if await tx.first(VISIBLE_TASK_ROW, params) is None:
                raise Conflict(f"taskId {data.task_id!r} is already in use.")
            if data.worker_id is not None and data.worker_id != task.worker_id:
                raise Conflict(f"Task {task.id!r} belongs to another worker.")
            if task.archived_at is not None:
                raise Conflict(f"Task {task.id!r} is archived.")
            worker = await tx.first(WORKER_ROW, {"worker_id": task.worker_id})
        elif data.worker_id is not None:
            worker = await workers.read_worker(tx, caller, data.worker_id)
        else:
            # No worker named: one is made on the fly with the input as its instructions. With
            # instructions given, preparing it never calls the model, so it may run in here.
            worker = await workers.prepare_worker(
                caller, WorkerCreate(instructions=data.input[:20_000]), model=model
            )
            await workers.insert_worker(tx, caller, worker)
        workspace = Workspace(settings.data_dir, worker.id, max_file_bytes=settings.max_file_bytes)
        cleaned = _check_uploads(workspace, uploads)

        if task is None:
            task = new_row(
                Task,
                id=data.task_id or new_id("tsk"),
                organization_id=caller.organization_id,
                worker_id=worker.id,
                created_by_user_id=caller.user_id,
                title=_title(data.input),
                status="pending",
                triggered_by=triggered_by,
                instructions_version=worker.instructions_version,
                active_turn_id=turn_id,
                turn_count=1,
            )
            await repository.insert_task(tx, task)
        elif not await repository.claim_for_turn(tx, task.id, turn_id):
            raise Conflict(f"A turn is already running on task {task.id!r}; wait for it to end.")
        else:
            task = await tx.first(TASK_ROW, {"task_id": task.id})
        turn = new_row(
            Turn,
            id=turn_id,
            task_id=task.id,
            seq=task.turn_count,
            input=data.input,
            budget=data.budget,
            status="pending",
            instructions_version=task.instructions_version,
        )
        await repository.insert_turn(tx, turn)
        # Uploads land in the workspace before the turn can start (it is enqueued after commit).
        for path, upload in cleaned.items():
            written = workspace.write(path, upload.data)
            await repository.insert_file(
                tx, turn.id, written.path, written.media_type, written.size
            )
    return StartedTurn(worker, task, turn)


def _check_uploads(workspace: Workspace, uploads: Sequence[Upload]) -> dict[str, Upload]:
    """Validate every upload before writing any, so a bad one leaves nothing behind. Two
    uploads to the same path: the later one is kept, as writing both would leave it."""
    paths = {}
    for upload in uploads:
        try:
            path = workspace.clean_path(upload.filename)
        except WorkspaceError as exc:
            raise BadRequest(str(exc), param="files") from None
        if len(upload.data) > workspace.max_file_bytes:
            raise BadRequest(
                f"{upload.filename!r} is larger than {workspace.max_file_bytes} bytes.",
                param="files",
            )
        paths.pop(path, None)
        paths[path] = upload
    return paths


async def enqueue_turn(turn_id: str) -> None:
    """Queue the turn's workflow; idempotent, as the workflow id is the turn id."""
    from kennel.tasks.workflows import run_turn, turn_context

    rt = runtime.current()
    async with rt.db.reader.snapshot() as read:
        context = await turn_context(read, rt.settings, turn_id)
    if context is None:
        log.warning("turn %s is gone; not enqueued", turn_id)
        return
    with SetWorkflowID(turn_id):
        await DBOS.enqueue_workflow_async(TURN_QUEUE, run_turn, turn_id, context)


_REMOTE_POLL_SECONDS = 1.0


async def wait_for_turn(turn_id: str, timeout: float) -> bool:
    """Wait until the turn ends or `timeout` passes; True when it ended."""
    if timeout <= 0:
        return False
    local = waiters.wait(turn_id)
    try:
        # The in-process signal is immediate. Polling DBOS, for a turn that another process runs
        # (or one that ended without the signal), starts only after a second: each poll is a
        # query, and most turns end sooner, here. Polls come a second apart anyway.
        started = time.monotonic()
        if (await asyncio.wait({local}, timeout=min(timeout, _REMOTE_POLL_SECONDS)))[0]:
            return True
        remaining = timeout - (time.monotonic() - started)
        if remaining <= 0:
            return False
        handle = await DBOS.retrieve_workflow_async(turn_id)
        remote = asyncio.ensure_future(handle.get_result(polling_interval_sec=_REMOTE_POLL_SECONDS))
        done, _ = await asyncio.wait(
            {local, remote}, timeout=remaining, return_when="FIRST_COMPLETED"
        )
        for future in (local, remote):
            if future not in done:
                future.cancel()
        for future in done:
            exc = future.exception()
            if exc is not None and not isinstance(exc, DBOSAwaitedWorkflowCancelledError):
                log.warning("waiting for turn %s: %r", turn_id, exc)
        return bool(done)
    finally:
        waiters.forget(turn_id, local)


async def get_task(session: AsyncSession, caller: Caller, task_id: str) -> tuple[Task, Worker]:
    found = await TaskRepository(session).get_visible(caller, task_id)
    if found is None:
        raise NotFound("task", task_id)
    return found


async def archive_task(session: AsyncSession, caller: Caller, task_id: str) -> list[str]:
    """Archive the task and abort its turn in flight; returns the turn ids to cancel."""
    task, worker = await get_task(session, caller, task_id)
    if worker.user_id != caller.user_id:
        raise Forbidden("Only the worker's creator may archive its tasks.")
    repo = TaskRepository(session)
    aborted = []
    # Read before aborting: the abort's UPDATE clears `task.active_turn_id` in the session too.
    turn_id = task.active_turn_id
    if turn_id and await repo.abort_turn(turn_id, "The task was archived."):
        aborted.append(turn_id)
    await repo.archive(task)
    return aborted


async def abort_turns(session: AsyncSession, worker_id: str, reason: str) -> list[str]:
    repo = TaskRepository(session)
    return [
        turn_id
        for turn_id in await repo.in_flight_turn_ids(worker_id=worker_id)
        if await repo.abort_turn(turn_id, reason)
    ]


async def cancel_workflows(turn_ids: list[str]) -> None:
    """Stop aborted turns' workflows (after the abort is committed) and wake their waiters."""
    for turn_id in turn_ids:
        await DBOS.cancel_workflow_async(turn_id)
        waiters.notify(turn_id)


async def _task_and_turns(
    read: Snapshot, worker_id: str, task_id: str | None = None
) -> tuple[Any, Sequence[Any]]:
    if task_id:
        task = await read.first(TASK_ROW, {"task_id": task_id})
    else:
        task = await read.first(LATEST_TASK_ROW, {"worker_id": worker_id})
    turns = await read.all(TURN_ROWS, {"task_id": task.id}) if task else []
    return task, turns


async def load_worker_state(
    read: Snapshot, settings: Settings, worker: Any, *, task_id: str | None = None
) -> WorkerState:
    """The `Worker` object as of its latest task, or as of `task_id` (the task a POST started).

    Read as Core rows (kennel.reads): `worker`, the task and its turns have the attributes of
    the ORM objects, which is all the rendering needs."""
    task, turns = await _task_and_turns(read, worker.id, task_id)
    files = []
    # On the loop, like the workspace writes of POST /api/tasks: listing a worker's folder took
    # about 20 us here, where a hop to a thread cost 115 us of CPU (and more under load).
    if has_workspace(settings.data_dir, worker.id):
        workspace = Workspace(settings.data_dir, worker.id, max_file_bytes=settings.max_file_bytes)
        files = workspace.list()
    return worker_state(settings, worker, task, turns, files)


async def latest_turns_for_stream(read: Snapshot, worker_id: str) -> tuple[list[Any], str | None]:
    """The latest task's finished turns (to replay) and the id of its turn in flight, if any."""
    _, turns = await _task_and_turns(read, worker_id)
    live = turns[-1].id if turns and turns[-1].status in IN_FLIGHT else None
    return [t for t in turns if t.id != live], live


def page_count(total: int) -> int:
    return max(1, math.ceil(total / PAGE_SIZE))
