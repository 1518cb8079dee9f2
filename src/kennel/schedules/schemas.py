"""Request and response shapes of the Schedules API, in the contract's casing."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, StrictInt

from kennel.schedules.timing import MAX_SECONDS
from kennel.tasks.schemas import Budget, TaskStatus

__all__ = [
    "Cron",
    "Delayed",
    "Interval",
    "ScheduleCancelled",
    "ScheduleCreate",
    "ScheduleDetail",
    "ScheduleList",
    "ScheduleOut",
    "ScheduleRun",
    "ScheduleRunList",
    "ScheduleUpdate",
    "Scheduled",
    "When",
]

ScheduleKind = Literal["scheduled", "delayed", "cron", "interval"]
RunOutcome = Literal["started", "caught_up", "manual", "skipped_overlap", "failed"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Scheduled(_Request):
    """Once, at a date and time in the future."""

    type: Literal["scheduled"]
    date: AwareDatetime = Field(description="ISO 8601 with an offset or Z, in the future.")


class Delayed(_Request):
    """Once, that many seconds from now."""

    type: Literal["delayed"]
    delay_in_seconds: StrictInt = Field(alias="delayInSeconds", ge=1, le=MAX_SECONDS)


class Cron(_Request):
    """On every tick of a five-field cron expression (`@daily` and friends too)."""

    type: Literal["cron"]
    cron: str = Field(min_length=1, max_length=200)
    timezone: str | None = Field(
        None,
        max_length=64,
        description="IANA zone the expression is read in; else the list's `timezone`.",
    )


class Interval(_Request):
    """Every N seconds from its creation (at least `KENNEL_MIN_INTERVAL_SECONDS`)."""

    type: Literal["interval"]
    interval_seconds: StrictInt = Field(alias="intervalSeconds", ge=1, le=MAX_SECONDS)


When = Annotated[Scheduled | Delayed | Cron | Interval, Field(discriminator="type")]


class ScheduleCreate(_Request):
    input: str = Field(min_length=1, max_length=100_000)
    when: When
    budget: Budget = "standard"


class ScheduleUpdate(_Request):
    paused: StrictBool = Field(description="A paused schedule keeps its place and does not fire.")


class _Response(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class ScheduleOut(_Response):
    """`WorkerSchedule`: the reference page's four shapes in one, by `type`."""

    id: str
    type: ScheduleKind
    input: str
    budget: Budget
    next_run_at: str = Field(alias="nextRunAt", description="The next due time, in UTC.")
    delay_in_seconds: int | None = Field(None, alias="delayInSeconds")
    cron: str | None = None
    timezone: str | None = Field(None, description="Cron: the zone it is read in.")
    interval_seconds: int | None = Field(None, alias="intervalSeconds")
    paused: bool = False
    last_run_at: str | None = Field(None, alias="lastRunAt")
    created_at: str = Field(alias="createdAt")


class ScheduleList(_Response):
    worker_id: str = Field(alias="workerId")
    timezone: str = Field(description="The zone cron expressions without one are read in.")
    schedules: list[ScheduleOut]


class ScheduleDetail(ScheduleOut):
    upcoming: list[str] = Field(description="The next five due times (one for a one-shot).")


class ScheduleCancelled(_Response):
    cancelled: bool


class ScheduleRun(_Response):
    id: str
    schedule_id: str = Field(alias="scheduleId")
    due_at: str = Field(alias="dueAt")
    fired_at: str = Field(alias="firedAt")
    outcome: RunOutcome
    task_id: str | None = Field(None, alias="taskId")
    task_status: TaskStatus | None = Field(None, alias="taskStatus")
    error: str | None = None
    missed_count: int = Field(
        0,
        alias="missedCount",
        ge=0,
        description="Later due times this run stood for besides its own `dueAt`: those missed "
        "while the server was down or the previous run was going, folded into this one. "
        "Counted up to 10,000.",
    )
    fired_by: str | None = Field(
        None,
        alias="firedBy",
        description="The executor id (`KENNEL_EXECUTOR_ID`) of the server process that fired "
        "it; null for runs recorded before Kennel kept it.",
    )


class ScheduleRunList(_Response):
    runs: list[ScheduleRun]
    page: int
    page_count: int = Field(alias="pageCount")
    total_count: int = Field(alias="totalCount")
