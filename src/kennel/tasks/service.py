"""Decisions about tasks: waiting for turns, the Worker object, listing, archiving (starting a
turn is `starting.py`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from dbos import DBOS, WorkflowHandleAsync
from dbos._error import DBOSAwaitedWorkflowCancelledError
from pydantic_ai.messages import AgentStreamEvent

from kennel.api.errors import Forbidden, NotFound
from kennel.auth import Caller
from kennel.core.durable import STREAM_POLLING_SECONDS
from kennel.core.runtime import Runtime
from kennel.core.timestamps import utcnow
from kennel.tasks import control, waiters
from kennel.tasks import repository as repo
from kennel.tasks.repository import TaskRow, TurnFileRow, TurnRow
from kennel.tasks.starting import StartedTurn
from kennel.tasks.state import load_worker_state, visible_worker_state
from kennel.tasks.streaming import TurnFailed, live_events, replayed_events, until_stopping
from kennel.workers import repository as workers_repo
from kennel.workers import service as workers_service
from kennel.workers.schemas import WorkerState

__all__ = [
    "PAGE_SIZE",
    "archive_task",
    "get_task",
    "list_tasks",
    "state_after_turn",
    "wait_for_turn",
    "worker_state",
]

log = logging.getLogger("kennel.tasks")

PAGE_SIZE = 20


_REMOTE_POLL_SECONDS = 1.0


async def wait_for_turn(
    turn_id: str, timeout: float, *, stopping: asyncio.Event | None = None
) -> bool:
    """Wait until the turn ends, `timeout` passes or the server is `stopping`; True when it
    ended."""
    if timeout <= 0:
        return False
    local = waiters.wait(turn_id)
    stop: set[asyncio.Future[Any]] = set()
    if stopping is not None:
        stop.add(asyncio.ensure_future(stopping.wait()))
    try:
        # The in-process signal is immediate. Polling DBOS, for a turn that another process runs
        # (or one that ended without the signal), starts only after a second: each poll is a
        # query, and most turns end sooner, here. Polls come a second apart anyway.
        started = time.monotonic()
        first = min(timeout, _REMOTE_POLL_SECONDS)
        done, _ = await asyncio.wait({local, *stop}, timeout=first, return_when="FIRST_COMPLETED")
        if local in done:
            return True
        remaining = timeout - (time.monotonic() - started)
        if done or remaining <= 0:
            return False  # stopping: answer with what there is
        handle: WorkflowHandleAsync[str] = await DBOS.retrieve_workflow_async(turn_id)
        remote: asyncio.Future[Any] = asyncio.ensure_future(
            handle.get_result(polling_interval_sec=_REMOTE_POLL_SECONDS)
        )
        either: set[asyncio.Future[Any]] = {local, remote}
        done, _ = await asyncio.wait(
            either | stop, timeout=remaining, return_when="FIRST_COMPLETED"
        )
        for future in either:
            if future not in done:
                future.cancel()
        for future in done & either:
            exc = future.exception()
            if exc is not None and not isinstance(exc, DBOSAwaitedWorkflowCancelledError):
                log.warning("waiting for turn %s: %r", turn_id, exc)
        return bool(done & either)
    finally:
        waiters.forget(turn_id, local)
        for future in stop:
            future.cancel()


async def worker_state(
    rt: Runtime, caller: Caller, worker_id: str, *, task_id: str | None = None
) -> WorkerState:
    """The `Worker` object: the live state of a worker the caller may see, as of its latest
    task or of `task_id` (a 404 for a task that is not the worker's or not visible)."""
    if task_id is not None:
        async with rt.db.read() as r:
            worker = await workers_service.visible_worker(r, caller, worker_id)
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
    await wait_for_turn(started.turn.id, rt.settings.task_wait_seconds, stopping=rt.stopping)
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
    rt: Runtime,
    caller: Caller,
    *,
    worker_id: str | None,
    status: str | None,
    page: int,
    search: str | None = None,
    triggered_by: str | None = None,
) -> tuple[list[TaskRow], int]:
    async with rt.db.read() as r:
        return await repo.page_visible(
            r,
            caller,
            worker_id=worker_id,
            status=status,
            page=page,
            size=PAGE_SIZE,
            search=search,
            triggered_by=triggered_by,
        )


async def archive_task(rt: Runtime, caller: Caller, public_id: str) -> None:
    """Archive the task and abort its turn in flight."""
    async with rt.db.write() as w:
        task = await repo.visible(w, caller, public_id)
        if task is None:
            raise NotFound("task", public_id)
        worker = await workers_service.visible_worker(w, caller, task.worker_id)
        if worker.user_id != caller.user_id:
            raise Forbidden("Only the worker's creator may archive its tasks.")
        aborted = {}
        if task.active_turn_id:
            concerned = await control.abort_turn(w, task.active_turn_id, "The task was archived.")
            if concerned is not None:
                aborted[task.active_turn_id] = concerned
        await repo.archive(w, task.id)
    await control.cancel_turn_workflows(aborted)


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
        worker = await workers_service.visible_worker(r, caller, worker_id)
        spent = await repo.turn_credits_since(r, worker.id, since)
    by_day = dict.fromkeys((first + timedelta(days=n) for n in range(days)), 0)
    for completed_at, credits in spent:
        day = completed_at.astimezone(UTC).date()
        if day in by_day:
            by_day[day] += credits
    return list(by_day.items())


async def turn_events(rt: Runtime, turn_id: str) -> AsyncIterator[AgentStreamEvent]:
    """A turn's events as they happen; `TurnFailed` at the end when it ended in error, or
    when the server stops first."""
    polling = STREAM_POLLING_SECONDS
    async for event in until_stopping(live_events(turn_id, polling_seconds=polling), rt.stopping):
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
        worker = await workers_service.visible_worker(r, caller, worker_id)
        internal_id = None
        if task_id is not None:
            chosen = await repo.visible_of_worker(r, caller, task_id, worker.id)
            if chosen is None:
                raise NotFound("task", task_id)
            internal_id = chosen.id
        task, turns = await repo.task_and_turns(r, worker_id=worker.id, task_id=internal_id)
    live = turns[-1].id if turns and turns[-1].status in repo.IN_FLIGHT else None
    finished = [t for t in turns if t.id != live]
    polling = STREAM_POLLING_SECONDS

    async def events() -> AsyncIterator[AgentStreamEvent]:
        for event in replayed_events(finished):
            yield event
        if live is not None:
            following = live_events(live, polling_seconds=polling)
            async for event in until_stopping(following, rt.stopping):
                yield event
        if turns:
            await _raise_if_failed(rt, turns[-1].id)

    ids = {"workerId": worker.id}
    if task is not None and turns:
        ids.update(taskId=task.public_id, turnId=turns[-1].id)
    return events(), ids
