"""Rows to response shapes: `Task` and `Turn`."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from kennel.core.settings import Settings
from kennel.core.timestamps import iso_z
from kennel.tasks.repository import TaskRow, TurnFileRow, TurnRow
from kennel.tasks.schemas import TaskOut, TaskTotals, TurnError, TurnOut
from kennel.workers.render import worker_file

__all__ = ["task_out", "task_url", "turn_out"]


def task_url(settings: Settings, public_id: str) -> str:
    return f"{settings.base_url}/tasks/{quote(public_id, safe='')}"


def task_out(settings: Settings, task: TaskRow) -> TaskOut:
    return TaskOut(
        id=task.public_id,
        organization_id=task.organization_id,
        worker_id=task.worker_id,
        created_by_user_id=task.created_by_user_id,
        title=task.title,
        status=task.status,
        triggered_by=task.triggered_by,
        totals=TaskTotals(
            credits=task.credits, duration_ms=task.duration_ms, turn_count=task.turn_count
        ),
        url=task_url(settings, task.public_id),
        created_at=iso_z(task.created_at),
        completed_at=iso_z(task.completed_at) if task.completed_at else None,
        archived=task.archived_at is not None,
        metadata=task.trigger or {},
    )


def turn_out(
    settings: Settings,
    task: TaskRow,
    turn: TurnRow,
    files: Sequence[TurnFileRow],
) -> TurnOut:
    return TurnOut(
        id=turn.id,
        task_id=task.public_id,
        seq=turn.seq,
        input=turn.input,
        budget=turn.budget,
        status=turn.status,
        output_text=turn.output_text,
        structured_output=turn.structured_output,
        input_tokens=turn.input_tokens,
        output_tokens=turn.output_tokens,
        credits=turn.credits,
        duration_ms=turn.duration_ms,
        started_at=iso_z(turn.started_at or turn.created_at),
        completed_at=iso_z(turn.completed_at) if turn.completed_at else None,
        files=[worker_file(settings, task.worker_id, f) for f in files],
        error=TurnError(code=turn.error_code, message=turn.error_message or "")
        if turn.error_code
        else None,
    )
