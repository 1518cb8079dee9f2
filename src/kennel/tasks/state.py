"""The `Worker` object: a worker's live state as of its most recent task."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import TypeAdapter
from pydantic_ai.messages import ModelMessagesTypeAdapter
from pydantic_ai.ui.vercel_ai import VercelAIAdapter
from pydantic_ai.ui.vercel_ai.request_types import UIMessage

from kennel.auth import Caller
from kennel.core.settings import Settings
from kennel.db import Read
from kennel.tasks import repository as repo
from kennel.tasks.repository import TaskRow, TurnRow
from kennel.workers.render import worker_file, worker_url
from kennel.workers.repository import WorkerRow
from kennel.workers.schemas import (
    WorkerOutput,
    WorkerOutputContent,
    WorkerSource,
    WorkerState,
    WorkerUsage,
)
from kennel.workspaces import MAX_LISTED, WorkspaceFile
from kennel.workspaces import repository as workspaces_repo
from kennel.workspaces.store import listed_files

__all__ = ["load_worker_state", "ui_messages", "visible_worker_state", "worker_state"]

_ui_messages = TypeAdapter(list[UIMessage])


async def visible_worker_state(
    r: Read, settings: Settings, caller: Caller, worker_id: str
) -> WorkerState | None:
    """The `Worker` object of a worker the caller may see, as of its latest task."""
    found = await repo.visible_worker_latest_task_and_turns(r, caller, worker_id)
    if found is None:
        return None
    files = await _workspace_files(r, worker_id) if found.has_files else []
    return worker_state(settings, found.worker, found.task, found.turns, files)


async def load_worker_state(
    r: Read, settings: Settings, worker: WorkerRow, *, task_id: str | None = None
) -> WorkerState:
    """The `Worker` object as of its latest task, or as of `task_id` (the task a POST started:
    with several tasks of the worker in flight, its latest may be another caller's)."""
    task, turns = await repo.task_and_turns(r, worker_id=worker.id, task_id=task_id)
    return worker_state(settings, worker, task, turns, await _workspace_files(r, worker.id))


async def _workspace_files(r: Read, worker_id: str) -> list[WorkspaceFile]:
    return listed_files(await workspaces_repo.listing(r, worker_id, limit=MAX_LISTED))


def worker_state(
    settings: Settings,
    worker: WorkerRow,
    task: TaskRow | None,
    turns: Sequence[TurnRow],
    workspace_files: Sequence[WorkspaceFile],
) -> WorkerState:
    """The `Worker` object of `worker` whose latest task is `task`."""
    files = [worker_file(settings, worker.id, f) for f in workspace_files]
    base: dict[str, Any] = {
        "id": worker.id,
        "created_at": int(worker.created_at.timestamp()),
        "files": files,
        "url": worker_url(settings, worker.id),
    }
    if task is None or not turns:
        return WorkerState(
            **base,
            status="pending",
            running=False,
            output=[],
            output_text="",
            structured_output=None,
            messages=[],
            sources=[],
            usage=WorkerUsage(credits=0, duration_ms=0),
            error=None,
            metadata={"taskId": None, "turnId": None, "triggeredBy": None, "title": worker.title},
        )
    latest = turns[-1]
    in_flight = latest.status in repo.IN_FLIGHT
    status: Literal["pending", "running", "completed"] = (
        "pending" if latest.status == "pending" else "running" if in_flight else "completed"
    )
    sources: dict[str, WorkerSource] = {}
    for turn in turns:
        for source in turn.sources or []:
            sources.setdefault(source["url"], WorkerSource(**source))
    output = (
        [
            WorkerOutput(
                id=f"msg_{latest.id}", content=[WorkerOutputContent(text=latest.output_text)]
            )
        ]
        if latest.output_text
        else []
    )
    return WorkerState(
        **base,
        status=status,
        running=in_flight,
        output=output,
        output_text=latest.output_text,
        structured_output=latest.structured_output,
        messages=ui_messages(turns),
        sources=list(sources.values()),
        usage=WorkerUsage(credits=task.credits, duration_ms=task.duration_ms),
        error={"code": latest.error_code, "message": latest.error_message or ""}
        if latest.error_code
        else None,
        metadata={
            "taskId": task.public_id,
            "turnId": latest.id,
            "triggeredBy": task.triggered_by,
            "taskStatus": task.status,
            "title": worker.title,
            **({"trigger": task.trigger} if task.trigger else {}),
            # What the latest turn's answer does not say (a tool it needed and never called).
            **({"notices": latest.notices} if latest.notices else {}),
        },
    )


def ui_messages(turns: Sequence[TurnRow]) -> list[dict[str, Any]]:
    """The conversation of a task as Vercel AI SDK UI messages, tool calls included."""
    raw: list[Any] = []
    for turn in turns:
        raw.extend(turn.messages or [])
    if not raw:
        return []
    messages = ModelMessagesTypeAdapter.validate_python(raw)
    dumped = VercelAIAdapter.dump_messages(messages)
    dumped_json: list[dict[str, Any]] = _ui_messages.dump_python(
        dumped, mode="json", by_alias=True, exclude_none=True
    )
    return dumped_json
