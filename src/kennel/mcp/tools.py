"""The tools `/mcp` offers a caller: one per worker it may run, and the general ones.

A worker's tool is `run_<slug of its title>`; when two workers the caller sees share a slug,
each gets the end of its id too (`run_daily_report_x7k2qd`), so the name never depends on which
of them is older. Names are computed from the caller's visible workers every time: a call
names a tool, and the same computation finds its worker.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import mcp_types as types
from pydantic import BaseModel, ConfigDict, Field

from kennel.schedules.schemas import ScheduleCreate, ScheduleList, ScheduleOut
from kennel.tasks.schemas import TASK_ID_PATTERN, Budget, TaskWithTurns
from kennel.workers.repository import WorkerRow

__all__ = [
    "GENERAL",
    "GENERAL_TOOLS",
    "LIST_PAGE_SIZE",
    "MAX_WORKER_TOOLS",
    "CreateScheduleArguments",
    "GetTaskArguments",
    "ListSchedulesArguments",
    "ListWorkersArguments",
    "RunArguments",
    "RunWorkerArguments",
    "WorkerList",
    "WorkerSummary",
    "general_tools",
    "tool_names",
    "worker_tool",
]

# Workers offered as tools, newest first; the rest are reached through `list_workers` and
# `run_worker`. A tool list is read by a model on every request: hundreds are already a lot.
MAX_WORKER_TOOLS = 200
LIST_PAGE_SIZE = 100
_SLUG_LENGTH = 48
_ID_TAIL = 6


class _Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False)


class RunArguments(_Arguments):
    """A worker tool's arguments."""

    input: str = Field(
        min_length=1, max_length=100_000, description="What to ask the worker: the turn's input."
    )
    task_id: str | None = Field(
        None,
        alias="taskId",
        description=(
            "Continue this task: the worker sees its earlier turns. A new id of your choosing"
            " (1-128 of letters, digits and `_ . : -`) starts a task under that id. Omit it"
            " for a new task."
        ),
        json_schema_extra={"pattern": TASK_ID_PATTERN},
    )
    budget: Budget = Field(
        "standard", description="Cap on what the turn may spend (model requests, tokens, time)."
    )
    idempotency_key: str | None = Field(
        None,
        alias="idempotencyKey",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description=(
            "Your unique value for this request. Calling again with the same key and the same"
            " arguments (within 24 hours) starts nothing new: it answers with the first call's"
            " turn. Use it when you may retry."
        ),
    )


class RunWorkerArguments(RunArguments):
    """`run_worker`: a worker tool's arguments and the worker's id."""

    worker_id: str = Field(alias="workerId", max_length=128, description="The worker's id.")


class ListWorkersArguments(_Arguments):
    page: int = Field(1, ge=1, le=100_000, description=f"{LIST_PAGE_SIZE} workers a page.")


class GetTaskArguments(_Arguments):
    task_id: str = Field(alias="taskId", min_length=1, max_length=128, description="The task.")
    wait_seconds: float = Field(
        0,
        alias="waitSeconds",
        ge=0,
        le=600,
        description=(
            "Wait up to this long (capped by the server's own wait) for a turn in flight to"
            " end before answering."
        ),
    )


class ListSchedulesArguments(_Arguments):
    worker_id: str = Field(alias="workerId", max_length=128, description="The worker.")


class CreateScheduleArguments(ScheduleCreate):
    worker_id: str = Field(alias="workerId", max_length=128, description="The worker.")


class WorkerSummary(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str
    tool: str | None = Field(description="Its tool's name; null past the tool list's limit.")
    title: str
    summary: str
    output_schema: dict[str, Any] | None = Field(alias="outputSchema")
    url: str


class WorkerList(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    workers: list[WorkerSummary]
    page: int
    page_count: int = Field(alias="pageCount")
    total_count: int = Field(alias="totalCount")


def _schema(model: type[BaseModel], *, mode: str = "validation") -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode=mode)  # type: ignore[arg-type]  # the two modes
    schema.pop("title", None)
    schema.pop("description", None)
    return schema


_RUN_SCHEMA = _schema(RunArguments)


@dataclass(frozen=True, slots=True)
class GeneralTool:
    name: str
    description: str
    arguments: type[_Arguments] | type[ScheduleCreate]
    result: type[BaseModel] | None  # None: a run's object has its worker's schema
    read_only: bool


GENERAL_TOOLS = (
    GeneralTool(
        "list_workers",
        "List the Kennel workers you may run, newest first: id, title, summary, output schema"
        " and the name of the tool that runs each.",
        ListWorkersArguments,
        WorkerList,
        read_only=True,
    ),
    GeneralTool(
        "run_worker",
        "Run a Kennel worker by id (as its own `run_...` tool does): wait for the turn's answer,"
        " or get the task id to fetch it with get_task when it takes longer.",
        RunWorkerArguments,
        None,
        read_only=False,
    ),
    GeneralTool(
        "get_task",
        "Get a task's state and its turns (input, answer, status, usage). With waitSeconds,"
        " wait for a turn in flight first: this is how to fetch the answer of a turn that was"
        " still running when its tool call answered.",
        GetTaskArguments,
        TaskWithTurns,
        read_only=True,
    ),
    GeneralTool(
        "list_schedules",
        "List a worker's schedules, the next due first.",
        ListSchedulesArguments,
        ScheduleList,
        read_only=True,
    ),
    GeneralTool(
        "create_schedule",
        "Schedule a task on a worker: once at a date (`when: {type: scheduled, date}`), after"
        " a delay (`{type: delayed, delayInSeconds}`), by cron (`{type: cron, cron,"
        " timezone?}`) or every N seconds (`{type: interval, intervalSeconds}`).",
        CreateScheduleArguments,
        ScheduleOut,
        read_only=False,
    ),
)
GENERAL = {tool.name: tool for tool in GENERAL_TOOLS}


def general_tools() -> list[types.Tool]:
    return [
        types.Tool(
            name=tool.name,
            description=tool.description,
            input_schema=_schema(tool.arguments),
            output_schema=_schema(tool.result, mode="serialization") if tool.result else None,
            annotations=types.ToolAnnotations(
                read_only_hint=tool.read_only,
                destructive_hint=False,
                idempotent_hint=tool.read_only,
                open_world_hint=tool.result is None,  # a run reaches whatever the worker does
            ),
        )
        for tool in GENERAL_TOOLS
    ]


def _slug(title: str) -> str:
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "_", ascii_title.lower()).strip("_")[:_SLUG_LENGTH].strip("_")
    return slug or "worker"


def tool_names(workers: Sequence[WorkerRow]) -> dict[str, WorkerRow]:
    """Each worker's tool name (see the module's docstring), name first."""
    slugs = [_slug(w.title) for w in workers]
    clashes = Counter(slugs)
    names: dict[str, WorkerRow] = {}
    for worker, slug in zip(workers, slugs, strict=True):
        name = f"run_{slug}" if clashes[slug] == 1 else f"run_{slug}_{worker.id[-_ID_TAIL:]}"
        names[name] = worker
    return names


def worker_tool(name: str, worker: WorkerRow) -> types.Tool:
    """The tool that runs `worker`: its answer, and with an output schema its object too."""
    description = worker.title + (f": {worker.summary}" if worker.summary else "")
    description += (
        f" (Kennel worker {worker.id}.) Waits for the answer; a long turn answers with its task"
        " id instead, to fetch the answer with get_task. Pass taskId to continue a task."
    )
    return types.Tool(
        name=name,
        title=worker.title,
        description=description,
        input_schema=_RUN_SCHEMA,
        output_schema=worker.output_schema,
        annotations=types.ToolAnnotations(
            title=worker.title,
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=False,
            open_world_hint=True,
        ),
    )
