"""Rows to response shapes: `Task`, `Turn` and the `Worker` object of a worker that has run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from pydantic import TypeAdapter
from pydantic_ai.messages import ModelMessagesTypeAdapter
from pydantic_ai.ui.vercel_ai import VercelAIAdapter
from pydantic_ai.ui.vercel_ai.request_types import UIMessage

from kennel.models import Task, Turn, TurnFile, Worker
from kennel.settings import Settings
from kennel.tasks.schemas import TaskOut, TaskTotals, TurnError, TurnOut
from kennel.timestamps import iso_z
from kennel.workers.render import pending_state, worker_url
from kennel.workers.schemas import (
    WorkerFile,
    WorkerOutput,
    WorkerOutputContent,
    WorkerSource,
    WorkerState,
    WorkerUsage,
)
from kennel.workspaces import WorkspaceFile

__all__ = ["file_url", "task_out", "task_url", "turn_out", "ui_messages", "worker_state"]

_ui_messages = TypeAdapter(list[UIMessage])


def task_url(settings: Settings, task_id: str) -> str:
    return f"{settings.public_url}/tasks/{quote(task_id, safe='')}"


def file_url(settings: Settings, worker_id: str, path: str) -> str:
    return f"{settings.public_url}/api/workers/{worker_id}/files/{quote(path)}"


def task_out(settings: Settings, task: Task) -> TaskOut:
    return TaskOut(
        id=task.id,
        organization_id=task.organization_id,
        worker_id=task.worker_id,
        created_by_user_id=task.created_by_user_id,
        title=task.title,
        status=task.status,  # type: ignore[arg-type]
        triggered_by=task.triggered_by,  # type: ignore[arg-type]
        totals=TaskTotals(
            credits=task.credits, duration_ms=task.duration_ms, turn_count=task.turn_count
        ),
        url=task_url(settings, task.id),
        created_at=iso_z(task.created_at),
        completed_at=iso_z(task.completed_at) if task.completed_at else None,
        archived=task.archived_at is not None,
    )


def _file(settings: Settings, worker_id: str, path: str, media_type: str, size: int) -> WorkerFile:
    return WorkerFile(
        filename=path, media_type=media_type, url=file_url(settings, worker_id, path), size=size
    )


def turn_out(settings: Settings, worker_id: str, turn: Turn, files: list[TurnFile]) -> TurnOut:
    return TurnOut(
        id=turn.id,
        task_id=turn.task_id,
        seq=turn.seq,
        input=turn.input,
        budget=turn.budget,  # type: ignore[arg-type]
        status=turn.status,  # type: ignore[arg-type]
        output_text=turn.output_text,
        structured_output=turn.structured_output,
        input_tokens=turn.input_tokens,
        output_tokens=turn.output_tokens,
        credits=turn.credits,
        duration_ms=turn.duration_ms,
        started_at=iso_z(turn.started_at or turn.created_at),
        completed_at=iso_z(turn.completed_at) if turn.completed_at else None,
        files=[_file(settings, worker_id, f.path, f.media_type, f.size) for f in files],
        error=TurnError(code=turn.error_code, message=turn.error_message or "")
        if turn.error_code
        else None,
    )


def ui_messages(turns: Sequence[Turn]) -> list[dict[str, Any]]:
    """The conversation of a task as Vercel AI SDK UI messages, tool calls included."""
    raw: list[Any] = []
    for turn in turns:
        raw.extend(turn.messages or [])
    if not raw:
        return []
    messages = ModelMessagesTypeAdapter.validate_python(raw)
    dumped = VercelAIAdapter.dump_messages(messages)
    return _ui_messages.dump_python(dumped, mode="json", by_alias=True, exclude_none=True)


def worker_state(
    settings: Settings,
    worker: Worker,
    task: Task | None,
    turns: Sequence[Turn],
    workspace_files: list[WorkspaceFile],
) -> WorkerState:
    """The `Worker` object as of its latest task (`pending_state` when it never ran).

    Reads only attributes, so Core rows of the same tables (kennel.reads) do as well as ORM
    objects."""
    if task is None or not turns:
        state = pending_state(settings, worker)
        state.files = [
            _file(settings, worker.id, f.path, f.media_type, f.size) for f in workspace_files
        ]
        return state
    latest = turns[-1]
    in_flight = latest.status in ("pending", "running")
    status = "pending" if latest.status == "pending" else "running" if in_flight else "completed"
    sources: dict[str, WorkerSource] = {}
    for turn in turns:
        for source in turn.sources or []:
            sources.setdefault(source["url"], WorkerSource(**source))
    output = (
        [
            WorkerOutput(
                id=f"msg_{latest.id}",
                content=[WorkerOutputContent(text=latest.output_text)],
            )
        ]
        if latest.output_text
        else []
    )
    return WorkerState(
        id=worker.id,
        created_at=int(worker.created_at.timestamp()),
        status=status,
        running=in_flight,
        output=output,
        output_text=latest.output_text,
        structured_output=latest.structured_output,
        messages=ui_messages(turns),
        files=[_file(settings, worker.id, f.path, f.media_type, f.size) for f in workspace_files],
        sources=list(sources.values()),
        usage=WorkerUsage(credits=task.credits, duration_ms=task.duration_ms),
        error={"code": latest.error_code, "message": latest.error_message or ""}
        if latest.error_code
        else None,
        metadata={
            "taskId": task.id,
            "turnId": latest.id,
            "triggeredBy": task.triggered_by,
            "taskStatus": task.status,
            "title": worker.title,
        },
        url=worker_url(settings, worker.id),
    )
