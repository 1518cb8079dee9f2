"""Request and response shapes of the Tasks API, in the contract's casing."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from kennel.workers.schemas import WorkerFile

__all__ = [
    "ArchiveTaskResponse",
    "TaskCreate",
    "TaskList",
    "TaskOut",
    "TaskTotals",
    "TaskWithTurns",
    "TurnError",
    "TurnList",
    "TurnOut",
]

Budget = Literal["low", "standard", "high", "unlimited"]
TaskStatus = Literal["pending", "running", "completed", "error", "aborted"]
TriggeredBy = Literal["api", "email", "schedule", "ui"]

TASK_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
_TASK_ID = re.compile(TASK_ID_PATTERN)


class TaskCreate(BaseModel):
    """`POST /api/tasks` (JSON, or the same fields as multipart form fields)."""

    model_config = ConfigDict(extra="forbid")

    input: str = Field(min_length=1, max_length=100_000)
    worker_id: str | None = Field(None, alias="workerId", max_length=128)
    task_id: str | None = Field(
        None,
        alias="taskId",
        description=(
            "Client-chosen id: 1-128 of letters, digits and `_ . : -`, starting with a letter or"
            " digit; unique within the organization."
        ),
        json_schema_extra={"pattern": TASK_ID_PATTERN},
    )
    budget: Budget = "standard"
    stream: StrictBool = False

    @field_validator("task_id")
    @classmethod
    def _task_id_form(cls, value: str | None) -> str | None:
        # fullmatch: `$` would let a trailing newline through.
        if value is not None and not _TASK_ID.fullmatch(value):
            raise ValueError(
                "must be 1-128 letters, digits or _ . : - and start with a letter or digit"
            )
        return value


class _Response(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class TaskTotals(_Response):
    credits: int
    duration_ms: int = Field(alias="durationMs")
    turn_count: int = Field(alias="turnCount")


class TaskOut(_Response):
    """`Task`."""

    id: str
    organization_id: str = Field(alias="organizationId")
    worker_id: str = Field(alias="workerId")
    created_by_user_id: str | None = Field(alias="createdByUserId")
    title: str
    status: TaskStatus
    triggered_by: TriggeredBy = Field(alias="triggeredBy")
    totals: TaskTotals
    url: str
    created_at: str = Field(alias="createdAt")
    completed_at: str | None = Field(alias="completedAt")
    archived: bool = False
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="What started the task beyond `triggeredBy`: a schedule's id and due time.",
    )


class TurnError(_Response):
    code: str
    message: str


class TurnOut(_Response):
    """`Turn`."""

    id: str
    task_id: str = Field(alias="taskId")
    seq: int
    role: Literal["user"] = "user"
    input: str
    budget: Budget
    status: TaskStatus
    output_text: str = Field(alias="outputText")
    structured_output: dict[str, Any] | None = Field(alias="structuredOutput")
    input_tokens: int = Field(alias="inputTokens")
    output_tokens: int = Field(alias="outputTokens")
    credits: int
    duration_ms: int = Field(alias="durationMs")
    started_at: str = Field(alias="startedAt")
    completed_at: str | None = Field(alias="completedAt")
    files: list[WorkerFile]
    error: TurnError | None = None


class TaskWithTurns(_Response):
    task: TaskOut
    turns: list[TurnOut]


class TurnList(_Response):
    task_id: str = Field(alias="taskId")
    items: list[TurnOut]


class TaskList(_Response):
    tasks: list[TaskOut]
    page: int
    page_count: int = Field(alias="pageCount")
    total_count: int = Field(alias="totalCount")


class ArchiveTaskResponse(_Response):
    archived: bool
