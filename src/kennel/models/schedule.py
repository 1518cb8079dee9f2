"""Schedules of future and recurring tasks, and every firing of one."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, ForeignKey, Index, Integer, String, Table, Text

from kennel.models.base import UTCDateTime, metadata, utcnow

__all__ = ["schedule_runs", "schedules"]

schedules = Table(
    "schedules",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("worker_id", ForeignKey("workers.id", ondelete="CASCADE"), nullable=False),
    Column("organization_id", ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
    # Firings start tasks as this user: the schedule's creator.
    Column("created_by_user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(10), nullable=False),  # scheduled | delayed | cron | interval
    Column("input", Text, nullable=False),
    Column("budget", String(20), nullable=False),
    Column("delay_seconds", Integer, nullable=True),
    Column("cron", String(200), nullable=True),
    Column("timezone", String(64), nullable=True),  # the one its cron is read in
    Column("interval_seconds", Integer, nullable=True),
    # Intervals: due at anchor + k·N. One-shots: their due time.
    Column("anchor", UTCDateTime, nullable=False),
    # The next due time, in UTC; NULL once a one-shot has fired or the schedule is cancelled.
    Column("next_run_at", UTCDateTime, nullable=True),
    Column("paused", Boolean, nullable=False, default=False),
    Column("last_run_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("cancelled_at", UTCDateTime, nullable=True),
    Index("ix_schedules_next_run_at", "next_run_at"),
    Index("ix_schedules_worker_id", "worker_id"),
)

schedule_runs = Table(
    "schedule_runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("schedule_id", ForeignKey("schedules.id", ondelete="CASCADE"), nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Column("fired_at", UTCDateTime, nullable=False),
    Column("outcome", String(20), nullable=False),
    # The task it started (internal id), if any.
    Column("task_id", ForeignKey("tasks.id", ondelete="SET NULL"), nullable=True),
    Column("error", Text, nullable=True),
    # Later due times this firing stood for besides its own (`due_at`): the ones folded into it
    # because they were missed during downtime or came while the previous run was going.
    Column("missed_count", Integer, nullable=False, default=0),
    # The executor id of the process that fired it (`KENNEL_EXECUTOR_ID`); NULL before 0014.
    Column("fired_by", String(200), nullable=True),
    Index("ix_schedule_runs_schedule_fired", "schedule_id", "fired_at"),
    Index("ix_schedule_runs_task_id", "task_id"),  # a deleted task's SET NULL (0015)
)
