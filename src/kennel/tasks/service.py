"""Decisions about tasks: starting turns (new tasks, follow-ups), waiting, listing, archiving."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from dbos import DBOS, SetWorkflowID, WorkflowHandleAsync
from dbos._error import DBOSAwaitedWorkflowCancelledError
from pydantic_ai.messages import AgentStreamEvent
from sqlalchemy.exc import IntegrityError

from kennel.auth import Caller
from kennel.db import Read, Write
from kennel.errors import ApiError, BadRequest, Conflict, Forbidden, NotFound
from kennel.idempotency import Idempotency, recorded, remember
from kennel.ids import new_id
from kennel.runtime import Runtime
from kennel.tasks import control, waiters
from kennel.tasks import repository as repo
from kennel.tasks.repository import TaskRow, TurnFileRow, TurnRow
from kennel.tasks.schemas import TaskCreate
from kennel.tasks.state import load_worker_state, visible_worker_state
from kennel.tasks.streaming import TurnFailed, live_events, replayed_events
from kennel.tasks.workflows import TURN_QUEUE, run_turn, turn_context
from kennel.timestamps import utcnow
from kennel.workers import repository as workers_repo
from kennel.workers import service as workers
from kennel.workers.repository import WorkerRow
from kennel.workers.schemas import WorkerCreate, WorkerState
from kennel.workspaces import Workspace, WorkspaceError

__all__ = [
    "PAGE_SIZE",
    "StartedTurn",
    "TurnInFlight",
    "Upload",
    "archive_task",
    "check_uploads",
    "enqueue_turn",
    "get_task",
    "list_tasks",
    "page_count",
    "record_turn",
    "requeue_pending_turns",
    "run_task",
    "start_turn",
    "state_after_turn",
    "wait_for_turn",
    "worker_state",
    "write_uploads",
]

log = logging.getLogger("kennel.tasks")

PAGE_SIZE = 20


class TurnInFlight(Conflict):
    """The task runs a turn already: a follow-up must wait for it to end."""


@dataclass(frozen=True, slots=True)
class Upload:
    filename: str
    data: bytes


@dataclass(frozen=True, slots=True)
class StartedTurn:
    worker: WorkerRow
    task: TaskRow
    turn: TurnRow


def _title(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else "Task"
    return first if len(first) <= 80 else first[:79] + "…"


async def run_task(
    rt: Runtime,
    caller: Caller,
    data: TaskCreate,
    *,
    uploads: Sequence[Upload] = (),
    triggered_by: str = "api",
    trigger: dict[str, Any] | None = None,
    idempotency: Idempotency | None = None,
) -> StartedTurn:
    """Start a turn (a new task's first, or a follow-up) and queue it to run; with a key
    already used for this request, the turn it started (queued again: a no-op)."""
    started = await start_turn(
        rt,
        caller,
        data,
        uploads=uploads,
        triggered_by=triggered_by,
        trigger=trigger,
        idempotency=idempotency,
    )
    await enqueue_turn(rt, started.turn.id)
    return started


async def start_turn(
    rt: Runtime,
    caller: Caller,
    data: TaskCreate,
    *,
    uploads: Sequence[Upload] = (),
    triggered_by: str = "api",
    trigger: dict[str, Any] | None = None,
    idempotency: Idempotency | None = None,
) -> StartedTurn:
    """Record a new turn (and its task, and worker, when new) in one transaction, then put its
    uploads into the workspace; the caller enqueues it."""
    settings = rt.settings
    cleaned = check_uploads(uploads, settings.max_file_bytes)
    organization_id = caller.organization_id
    try:
        async with rt.db.write() as w:
            if idempotency and (earlier := await recorded(w, organization_id, idempotency)):
                return await _started_of(w, earlier)
            started = await record_turn(
                w, rt, caller, data, cleaned, triggered_by=triggered_by, trigger=trigger
            )
            if idempotency:
                await remember(w, organization_id, idempotency, started.turn.id)
    except IntegrityError:
        # Two requests chose the same new taskId, or sent the same key, at once (PostgreSQL
        # lets both get this far): the second is the first's copy, or a conflict.
        if idempotency:
            async with rt.db.read() as r:
                if earlier := await recorded(r, organization_id, idempotency):
                    return await _started_of(r, earlier)
        raise Conflict(f"taskId {data.task_id!r} was just taken by another request.") from None
    if cleaned:
        await write_uploads(rt, started, cleaned)
    return started


async def _started_of(r: Read, turn_id: str) -> StartedTurn:
    turn = await repo.turn(r, turn_id)
    task = await repo.by_id(r, turn.task_id) if turn else None
    worker = await workers_repo.by_id(r, task.worker_id) if task else None
    if turn is None or task is None or worker is None:  # rows are never deleted
        raise RuntimeError(f"turn {turn_id} of an idempotency key is gone")
    return StartedTurn(worker, task, turn)


async def record_turn(
    w: Write,
    rt: Runtime,
    caller: Caller,
    data: TaskCreate,
    uploads: dict[str, Upload],
    *,
    triggered_by: str,
    trigger: dict[str, Any] | None,
    turn_id: str | None = None,
) -> StartedTurn:
    """The rows of a new turn (and its task, and worker, when new) in `w`; ApiError before
    writing anything when the request cannot be met. `turn_id`: one derived by the caller (a
    schedule's firing), else a new one."""
    turn_id = turn_id or new_id("trn")
    task: TaskRow | None = None
    if data.task_id is not None:
        task = await repo.by_public_id(w, caller.organization_id, data.task_id)
    if task is not None:
        if await repo.visible(w, caller, task.public_id) is None:
            raise Conflict(f"taskId {data.task_id!r} is already in use.")
        if data.worker_id is not None and data.worker_id != task.worker_id:
            raise Conflict(f"Task {task.public_id!r} belongs to another worker.")
        if task.archived_at is not None:
            raise Conflict(f"Task {task.public_id!r} is archived.")
        worker = await workers.visible_worker(w, caller, task.worker_id)
    elif data.worker_id is not None:
        worker = await workers.visible_worker(w, caller, data.worker_id)
    else:
        # No worker named: one is made on the fly with the input as its instructions. With
        # instructions given, preparing it never calls the model, so it may run in here.
        prepared = await workers.prepare_worker(
            caller, WorkerCreate(instructions=data.input[:20_000]), model=rt.model
        )
        worker = await workers.insert_worker(w, prepared)
    workspace = rt.workspace(worker.id)
    for path in uploads:
        try:
            workspace.check_writable(path)
        except WorkspaceError as exc:
            raise BadRequest(str(exc), param="files") from None
    now = utcnow()
    if task is None:
        task_id = new_id("tsk")
        task = TaskRow(
            id=task_id,
            public_id=data.task_id or task_id,
            organization_id=caller.organization_id,
            worker_id=worker.id,
            created_by_user_id=caller.user_id,
            title=_title(data.input),
            status="pending",
            triggered_by=triggered_by,
            instructions_version=worker.instructions_version,
            active_turn_id=turn_id,
            turn_count=1,
            credits=0,
            duration_ms=0,
            trigger=trigger,
            created_at=now,
            last_turn_at=now,
            completed_at=None,
            archived_at=None,
        )
        await repo.insert_task(w, task)
    else:
        claimed = await repo.claim_for_turn(w, task.id, turn_id)
        if claimed is None:
            raise TurnInFlight(
                f"A turn is already running on task {task.public_id!r}; wait for it to end."
            )
        task = claimed
    turn = TurnRow(
        id=turn_id,
        task_id=task.id,
        seq=task.turn_count,
        input=data.input,
        budget=data.budget,
        status="pending",
        instructions_version=task.instructions_version,
        output_text="",
        structured_output=None,
        messages=[],
        sources=[],
        input_tokens=0,
        output_tokens=0,
        requests=0,
        credits=0,
        duration_ms=0,
        error_code=None,
        error_message=None,
        created_at=now,
        started_at=None,
        completed_at=None,
    )
    await repo.insert_turn(w, turn)
    await repo.insert_files(
        w,
        [
            TurnFileRow(turn_id, path, Workspace.media_type_of(path), len(u.data), now)
            for path, u in uploads.items()
        ],
    )
    return StartedTurn(worker, task, turn)


def check_uploads(uploads: Sequence[Upload], max_bytes: int) -> dict[str, Upload]:
    """Validate every upload before anything is written, so a bad one leaves nothing behind.
    Two uploads to the same path: the later one is kept, as writing both would leave it."""
    paths: dict[str, Upload] = {}
    for upload in uploads:
        try:
            path = Workspace.clean_path(upload.filename)
        except WorkspaceError as exc:
            raise BadRequest(str(exc), param="files") from None
        if len(upload.data) > max_bytes:
            raise ApiError(413, f"{path!r} is larger than {max_bytes} bytes.", param="files")
        paths.pop(path, None)
        paths[path] = upload
    return paths


async def write_uploads(rt: Runtime, started: StartedTurn, uploads: dict[str, Upload]) -> None:
    """Put the uploads into the workspace, after the commit (a file write holds no lock) and
    before the turn is queued; a failure ends the turn, so nothing waits for it."""
    workspace = rt.workspace(started.worker.id)
    try:
        for path, upload in uploads.items():
            await asyncio.to_thread(workspace.write, path, upload.data)
    except Exception as exc:
        async with rt.db.write() as w:
            await repo.finish_turn(
                w,
                started.turn.id,
                "error",
                {
                    "error_code": "upload_failed",
                    "error_message": f"Storing an upload failed: {exc}",
                },
                only_from=("pending",),
                listeners=(),  # its starter (request or mail intake) fails instead
            )
        raise


async def enqueue_turn(rt: Runtime, turn_id: str) -> None:
    """Queue the turn's workflow; idempotent, as the workflow id is the turn id."""
    async with rt.db.read() as r:
        context = await turn_context(r, rt.settings, turn_id)
    if context is None:
        log.warning("turn %s is not pending; not enqueued", turn_id)
        return
    with SetWorkflowID(turn_id):
        await DBOS.enqueue_workflow_async(TURN_QUEUE, run_turn, turn_id, context)


async def requeue_pending_turns(rt: Runtime) -> None:
    """At start-up: queue the turns whose request committed but died before queueing them
    (idempotent)."""
    async with rt.db.read() as r:
        pending = await repo.pending_turn_ids(r)
    for turn_id in pending:
        await enqueue_turn(rt, turn_id)


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
        handle: WorkflowHandleAsync[str] = await DBOS.retrieve_workflow_async(turn_id)
        remote: asyncio.Future[Any] = asyncio.ensure_future(
            handle.get_result(polling_interval_sec=_REMOTE_POLL_SECONDS)
        )
        either: set[asyncio.Future[Any]] = {local, remote}
        done, _ = await asyncio.wait(either, timeout=remaining, return_when="FIRST_COMPLETED")
        for future in either:
            if future not in done:
                future.cancel()
        for future in done:
            exc = future.exception()
            if exc is not None and not isinstance(exc, DBOSAwaitedWorkflowCancelledError):
                log.warning("waiting for turn %s: %r", turn_id, exc)
        return bool(done)
    finally:
        waiters.forget(turn_id, local)


async def worker_state(
    rt: Runtime, caller: Caller, worker_id: str, *, task_id: str | None = None
) -> WorkerState:
    """The `Worker` object: the live state of a worker the caller may see, as of its latest
    task or of `task_id` (a 404 for a task that is not the worker's or not visible)."""
    if task_id is not None:
        async with rt.db.read() as r:
            worker = await workers.visible_worker(r, caller, worker_id)
            task = await repo.visible_of_worker(r, caller, task_id, worker.id)
            if task is None:
                raise NotFound("task", task_id)
            return await load_worker_state(r, rt.settings, worker, task_id=task.id)
    async with rt.db.read(snapshot=False) as r:  # one statement: one moment by itself
        state = await visible_worker_state(r, rt.settings, caller, worker_id)
    if state is None:
        raise NotFound("worker", worker_id)
    return state


async def state_after_turn(rt: Runtime, started: StartedTurn) -> WorkerState:
    """Wait for the turn (up to the configured wait); the `Worker` object as of its task."""
    await wait_for_turn(started.turn.id, rt.settings.task_wait_seconds)
    async with rt.db.read() as r:
        worker = await workers_repo.by_id(r, started.worker.id)
        assert worker is not None, started.worker.id
        return await load_worker_state(r, rt.settings, worker, task_id=started.task.id)


async def get_task(
    rt: Runtime, caller: Caller, public_id: str
) -> tuple[TaskRow, list[TurnRow], list[TurnFileRow]]:
    """The task the caller may see, its turns and the files they published."""
    async with rt.db.read() as r:
        task = await repo.visible(r, caller, public_id)
        if task is None:
            raise NotFound("task", public_id)
        return task, await repo.turns_of(r, task.id), await repo.files_of_task(r, task.id)


async def list_tasks(
    rt: Runtime, caller: Caller, *, worker_id: str | None, status: str | None, page: int
) -> tuple[list[TaskRow], int]:
    async with rt.db.read() as r:
        return await repo.page_visible(
            r, caller, worker_id=worker_id, status=status, page=page, size=PAGE_SIZE
        )


async def archive_task(rt: Runtime, caller: Caller, public_id: str) -> None:
    """Archive the task and abort its turn in flight."""
    async with rt.db.write() as w:
        task = await repo.visible(w, caller, public_id)
        if task is None:
            raise NotFound("task", public_id)
        worker = await workers.visible_worker(w, caller, task.worker_id)
        if worker.user_id != caller.user_id:
            raise Forbidden("Only the worker's creator may archive its tasks.")
        aborted = {}
        if task.active_turn_id:
            concerned = await control.abort_turn(w, task.active_turn_id, "The task was archived.")
            if concerned is not None:
                aborted[task.active_turn_id] = concerned
        await repo.archive(w, task.id)
    await control.cancel_turn_workflows(aborted)


def page_count(total: int) -> int:
    return max(1, math.ceil(total / PAGE_SIZE))


# -- for the dashboard ----------------------------------------------------------------------

__all__ += ["credits_per_day", "turn_events", "worker_activity", "worker_events"]


async def worker_activity(
    rt: Runtime, caller: Caller, worker_ids: Sequence[str]
) -> dict[str, repo.WorkerActivity]:
    """Latest run and credits of each of those workers the caller may see."""
    async with rt.db.read() as r:
        return await repo.activity_of_workers(r, caller, worker_ids)


async def credits_per_day(
    rt: Runtime, caller: Caller, worker_id: str, *, days: int = 30, today: date | None = None
) -> list[tuple[date, int]]:
    """Credits the worker's turns spent on each of the last `days` days (UTC), oldest first."""
    today = today or utcnow().date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
    async with rt.db.read() as r:
        worker = await workers.visible_worker(r, caller, worker_id)
        spent = await repo.turn_credits_since(r, worker.id, since)
    by_day = dict.fromkeys((first + timedelta(days=n) for n in range(days)), 0)
    for completed_at, credits in spent:
        day = completed_at.astimezone(UTC).date()
        if day in by_day:
            by_day[day] += credits
    return list(by_day.items())


async def turn_events(rt: Runtime, turn_id: str) -> AsyncIterator[AgentStreamEvent]:
    """A turn's events as they happen; `TurnFailed` at the end when it ended in error."""
    async for event in live_events(turn_id, polling_seconds=rt.settings.queue_polling_seconds):
        yield event
    await _raise_if_failed(rt, turn_id)


async def _raise_if_failed(rt: Runtime, turn_id: str) -> None:
    async with rt.db.read(snapshot=False) as r:
        turn = await repo.turn(r, turn_id)
    if turn is not None and turn.status == "error":
        raise TurnFailed(turn.error_code or "error", turn.error_message or "The turn failed.")


async def worker_events(
    rt: Runtime, caller: Caller, worker_id: str, *, task_id: str | None = None
) -> tuple[AsyncIterator[AgentStreamEvent], dict[str, str]]:
    """The events of `GET /api/workers/{id}?stream=true`: the latest task's (or `task_id`'s)
    finished turns replayed, then its turn in flight as it happens; and the ids of its
    `start` chunk."""
    async with rt.db.read() as r:
        worker = await workers.visible_worker(r, caller, worker_id)
        internal_id = None
        if task_id is not None:
            chosen = await repo.visible_of_worker(r, caller, task_id, worker.id)
            if chosen is None:
                raise NotFound("task", task_id)
            internal_id = chosen.id
        task, turns = await repo.task_and_turns(r, worker_id=worker.id, task_id=internal_id)
    live = turns[-1].id if turns and turns[-1].status in repo.IN_FLIGHT else None
    finished = [t for t in turns if t.id != live]
    polling = rt.settings.queue_polling_seconds

    async def events() -> AsyncIterator[AgentStreamEvent]:
        for event in replayed_events(finished):
            yield event
        if live is not None:
            async for event in live_events(live, polling_seconds=polling):
                yield event
        if turns:
            await _raise_if_failed(rt, turns[-1].id)

    ids = {"workerId": worker.id}
    if task is not None and turns:
        ids.update(taskId=task.public_id, turnId=turns[-1].id)
    return events(), ids
