"""Starting a turn: one typed request and one function, whoever starts it.

Four starters: the API (`POST /api/tasks`, and the dashboard's Run form), the schedule
dispatcher, a schedule's run-now and mail intake. Each says what it wants as a `TurnRequest`
and records it with `record_turn` in a write block of its own, beside its own rows (a
schedule's run, a message's outcome); the turn's uploads go into the workspace in that block
too, so they commit with the turn or not at all. Once the block has committed, it queues the
turn (`enqueue_turn`). The API does all of it through `run_task`, which adds the idempotency
key.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from dbos import DBOS, PropagateOtelContext, SetWorkflowID
from sqlalchemy.exc import IntegrityError

from kennel.api.errors import ApiError, BadRequest, Conflict, TooBusy
from kennel.auth import Caller
from kennel.core import wakeup
from kennel.core.causes import transient_cause
from kennel.core.ids import new_id
from kennel.core.runtime import Runtime
from kennel.core.timestamps import utcnow
from kennel.db import Read, Write
from kennel.idempotency import Idempotency, recorded, remember
from kennel.metrics import record_database_error
from kennel.tasks import repository as repo
from kennel.tasks.repository import TaskRow, TurnFileRow, TurnRow
from kennel.tasks.schemas import Budget, TaskCreate, TriggeredBy
from kennel.tasks.workflows import TURN_QUEUE, run_turn, turn_context
from kennel.workers import repository as workers_repo
from kennel.workers import service as workers_service
from kennel.workers.repository import WorkerRow
from kennel.workers.schemas import WorkerCreate
from kennel.workspaces import WorkspaceError, clean_path, media_type_of

__all__ = [
    "StartedTurn",
    "TaskExists",
    "TurnInFlight",
    "TurnRequest",
    "Upload",
    "enqueue_turn",
    "queue_stranded_turns",
    "record_turn",
    "run_task",
    "start_turn",
]

log = logging.getLogger("kennel.tasks")


class TurnInFlight(Conflict):
    """The task runs a turn already: a follow-up must wait for it to end."""


class TaskExists(Conflict):
    """A request for a new task only names a task that exists already."""


@dataclass(frozen=True, slots=True)
class Upload:
    filename: str
    data: bytes


@dataclass(frozen=True, slots=True)
class TurnRequest:
    """One turn to start: a new task's first, or a follow-up of `task_id`."""

    origin: TriggeredBy  # the task's `triggeredBy`
    caller: Caller  # whose the task is; what it may see
    input: str
    worker_id: str | None = None  # None: a worker made on the fly, the input its instructions
    task_id: str | None = None  # a public id: the task to follow up, or the new task's own
    budget: Budget = "standard"
    uploads: Sequence[Upload] = ()
    trigger: Mapping[str, Any] | None = None  # what started it beyond `origin` (task metadata)
    turn_id: str | None = None  # fixed by the starter (a schedule's firing), else a new one
    new_task_only: bool = False  # `task_id` must be new (a firing is never a follow-up)

    @classmethod
    def from_create(
        cls,
        data: TaskCreate,
        caller: Caller,
        *,
        origin: TriggeredBy = "api",
        uploads: Sequence[Upload] = (),
    ) -> TurnRequest:
        """The turn `POST /api/tasks` (or the dashboard's Run form) asks for."""
        return cls(
            origin=origin,
            caller=caller,
            input=data.input,
            worker_id=data.worker_id,
            task_id=data.task_id,
            budget=data.budget,
            uploads=uploads,
        )


@dataclass(frozen=True, slots=True)
class StartedTurn:
    worker: WorkerRow
    task: TaskRow
    turn: TurnRow
    # By workspace path: written into the workspace with the turn's rows.
    uploads: Mapping[str, Upload] = field(default_factory=dict)


# Admission control: how many requests one process takes in (records and queues a turn for)
# at once. Each is a few ms of the event loop that the turns running on it also need; past
# this many at once the loop is already behind, and taking in more only made every request,
# read or write, wait longer (offered 4x what it could do, a server answered POSTs in 60 s
# and finished fewer turns: `bench/overload.py`). The rest get 429 with Retry-After, which
# the official SDKs honour by retrying.
STARTING_AT_ONCE = 32
_starting = 0


async def run_task(
    rt: Runtime, request: TurnRequest, *, idempotency: Idempotency | None = None
) -> StartedTurn:
    """Start the turn and queue it to run; with a key already used for this request, the turn
    it started (queued again: a no-op). 429 while `STARTING_AT_ONCE` others are starting."""
    global _starting
    if _starting >= STARTING_AT_ONCE:
        raise TooBusy(
            f"This server is taking in {_starting} tasks at once, as many as it can; "
            "retry in a second.",
            retry_after=1,
        )
    _starting += 1
    try:
        return await _run_task(rt, request, idempotency=idempotency)
    finally:
        _starting -= 1


async def _run_task(
    rt: Runtime, request: TurnRequest, *, idempotency: Idempotency | None
) -> StartedTurn:
    started = await start_turn(rt, request, idempotency=idempotency)
    try:
        await enqueue_turn(rt, started.turn.id)
    except Exception as exc:
        record_database_error(exc, "queueing")
        # The rows have committed: the request answers with them, and the turn is queued by
        # the next heartbeat's sweep (`queue_stranded_turns`) rather than lost or reported as
        # a failure that a retrying client would turn into a duplicate.
        log.warning(
            "turn %s recorded but not queued (%s); the sweep queues it",
            started.turn.id,
            transient_cause(exc) or f"{type(exc).__name__}: {exc}",
            extra={"turnId": started.turn.id},
        )
    return started


async def start_turn(
    rt: Runtime, request: TurnRequest, *, idempotency: Idempotency | None = None
) -> StartedTurn:
    """Record the turn, its uploads included, in a transaction of its own; the caller queues
    it."""
    organization_id = request.caller.organization_id
    try:
        async with rt.db.write() as w:
            if idempotency and (earlier := await recorded(w, organization_id, idempotency)):
                return await _started_of(w, earlier)
            started = await record_turn(w, rt, request)
            if idempotency:
                await remember(w, organization_id, idempotency, started.turn.id)
    except IntegrityError:
        # Two requests chose the same new taskId, or sent the same key, at once (PostgreSQL
        # lets both get this far): the second is the first's copy, or a conflict.
        if idempotency:
            async with rt.db.read() as r:
                if earlier := await recorded(r, organization_id, idempotency):
                    return await _started_of(r, earlier)
        raise Conflict(f"taskId {request.task_id!r} was just taken by another request.") from None
    return started


async def _started_of(r: Read, turn_id: str) -> StartedTurn:
    turn = await repo.turn(r, turn_id)
    task = await repo.by_id(r, turn.task_id) if turn else None
    worker = await workers_repo.by_id(r, task.worker_id) if task else None
    if turn is None or task is None or worker is None:  # rows are never deleted
        raise RuntimeError(f"turn {turn_id} of an idempotency key is gone")
    return StartedTurn(worker, task, turn)


async def record_turn(w: Write, rt: Runtime, request: TurnRequest) -> StartedTurn:
    """The rows of the turn (and of its task, and worker, when new) and its uploads in `w`; an
    ApiError before anything is written when the request cannot be met."""
    caller = request.caller
    uploads = _checked_uploads(request.uploads, rt.settings.max_file_bytes)
    turn_id = request.turn_id or new_id("trn")
    task: TaskRow | None = None
    if request.new_task_only and request.worker_id is not None:
        # The worker first: a firing of a worker gone is refused for that, not as a repeat.
        await workers_service.visible_worker(w, caller, request.worker_id)
    if request.task_id is not None:
        task = await repo.by_public_id(w, caller.organization_id, request.task_id)
    if task is not None:
        if request.new_task_only:
            raise TaskExists(f"Task {task.public_id!r} exists already.")
        if await repo.visible(w, caller, task.public_id) is None:
            raise Conflict(f"taskId {request.task_id!r} is already in use.")
        if request.worker_id is not None and request.worker_id != task.worker_id:
            raise Conflict(f"Task {task.public_id!r} belongs to another worker.")
        if task.archived_at is not None:
            raise Conflict(f"Task {task.public_id!r} is archived.")
        worker = await workers_service.visible_worker(w, caller, task.worker_id)
    elif request.worker_id is not None:
        worker = await workers_service.visible_worker(w, caller, request.worker_id)
    else:
        # No worker named: one is made on the fly with the input as its instructions. With
        # instructions given, preparing it never calls the model, so it may run in here.
        prepared = await workers_service.prepare_worker(
            caller, WorkerCreate(instructions=request.input[:20_000]), model=rt.model
        )
        worker = await workers_service.insert_worker(w, prepared)
    workspace = rt.workspace(worker.id)
    for path in uploads:
        try:
            await workspace.check_writable(path)
        except WorkspaceError as exc:
            raise BadRequest(str(exc), param="files") from None
    now = utcnow()
    if task is None:
        task_id = new_id("tsk")
        task = TaskRow(
            id=task_id,
            public_id=request.task_id or task_id,
            organization_id=caller.organization_id,
            worker_id=worker.id,
            created_by_user_id=caller.user_id,
            title=_title(request.input),
            status="pending",
            triggered_by=request.origin,
            instructions_version=worker.instructions_version,
            active_turn_id=turn_id,
            turn_count=1,
            credits=0,
            duration_ms=0,
            trigger=dict(request.trigger) if request.trigger else None,
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
        input=request.input,
        budget=request.budget,
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
        notices=[],
    )
    await repo.insert_turn(w, turn)
    await repo.insert_files(
        w,
        [
            TurnFileRow(turn_id, path, media_type_of(path), len(u.data), now)
            for path, u in uploads.items()
        ],
    )
    try:
        for path, upload in uploads.items():
            await workspace.write(path, upload.data)  # joins `w`: commits with the turn
    except WorkspaceError as exc:  # another request just made a folder of that name (a race)
        raise BadRequest(str(exc), param="files") from None
    return StartedTurn(worker, task, turn, uploads)


def _title(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else "Task"
    return first if len(first) <= 80 else first[:79] + "…"


def _checked_uploads(uploads: Sequence[Upload], max_bytes: int) -> dict[str, Upload]:
    """Validate every upload before anything is written, so a bad one leaves nothing behind.
    Two uploads to the same path: the later one is kept, as writing both would leave it."""
    paths: dict[str, Upload] = {}
    for upload in uploads:
        try:
            path = clean_path(upload.filename)
        except WorkspaceError as exc:
            raise BadRequest(str(exc), param="files") from None
        if len(upload.data) > max_bytes:
            raise ApiError(413, f"{path!r} is larger than {max_bytes} bytes.", param="files")
        paths.pop(path, None)
        paths[path] = upload
    for path in paths:  # `a` and `a/b` in one request: a file and a folder of one name
        parts = path.split("/")
        for folder in ("/".join(parts[:n]) for n in range(1, len(parts))):
            if folder in paths:
                raise BadRequest(
                    f"{folder!r} is a file, so {path!r} cannot be made in it", param="files"
                )
    return paths


async def enqueue_turn(rt: Runtime, turn_id: str) -> None:
    """Queue the turn's workflow; idempotent, as the workflow id is the turn id."""
    async with rt.db.read() as r:
        context = await turn_context(r, rt.settings, turn_id)
    if context is None:
        log.warning("turn %s is not pending; not enqueued", turn_id)
        return
    # The caller's trace context (the request's span, or the schedule firing's) goes into the
    # workflow's row, so the turn joins that trace in whichever process runs it, even after a
    # restart. Nothing is written when traces are off.
    with SetWorkflowID(turn_id), PropagateOtelContext():
        await DBOS.enqueue_workflow_async(TURN_QUEUE, run_turn, turn_id, context)
    wakeup.ring(TURN_QUEUE)


# A pending turn this old that DBOS does not know was stranded between its commit and its
# queueing (its request met a fault, or its process died); younger ones may be on their way.
STRANDED_AFTER = timedelta(seconds=10)
_SWEEP_PAGE = 500


async def queue_stranded_turns(rt: Runtime, *, grace: timedelta = STRANDED_AFTER) -> int:
    """Queue the pending turns older than `grace` that no workflow runs (their request
    committed, then met a fault or died before queueing them); how many. At start-up (no
    grace) and at every heartbeat (`core.takeover`); idempotent, as the workflow id is the
    turn's. The oldest `_SWEEP_PAGE` pending turns are looked at each time: behind a backlog
    of queued turns, a younger stranded one is found as the backlog drains."""
    async with rt.db.read() as r:
        pending = await repo.pending_turn_ids(r, created_before=utcnow() - grace, limit=_SWEEP_PAGE)
    if not pending:
        return 0
    known = await DBOS.list_workflows_async(
        workflow_ids=pending, load_input=False, load_output=False
    )
    found = {status.workflow_id for status in known}
    stranded = [turn_id for turn_id in pending if turn_id not in found]
    for turn_id in stranded:
        await enqueue_turn(rt, turn_id)
    if stranded:
        log.warning(
            "queued %d turn(s) whose request ended before queueing them",
            len(stranded),
            extra={"turnIds": stranded[:50]},
        )
    return len(stranded)
