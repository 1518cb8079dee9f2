"""Tasks, their turns, and the files each turn published into the worker's workspace."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from kennel.models.base import JsonValue, UTCDateTime, metadata, utcnow

__all__ = ["tasks", "turn_files", "turns"]

tasks = Table(
    "tasks",
    metadata,
    Column("id", String(128), primary_key=True),
    # The id the API shows: client-chosen, or the same as `id`. Unique within an organization
    # only, so no answer depends on whether another organization uses it.
    Column("public_id", String(128), nullable=False),
    Column("organization_id", ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
    Column("worker_id", ForeignKey("workers.id", ondelete="CASCADE"), nullable=False),
    Column("created_by_user_id", ForeignKey("users.id"), nullable=True),
    Column("title", String(200), nullable=False),
    Column("status", String(20), nullable=False, default="pending"),
    Column("triggered_by", String(20), nullable=False, default="api"),
    # The worker's instructions version when the task started; every turn of the task uses it.
    Column("instructions_version", Integer, nullable=False),
    # The turn in flight, if any: set with a conditional UPDATE, so two turns never overlap.
    Column("active_turn_id", String(40), nullable=True),
    Column("turn_count", Integer, nullable=False, default=0),
    Column("credits", Integer, nullable=False, default=0),
    Column("duration_ms", Integer, nullable=False, default=0),
    # What started it, beyond `triggered_by` (a schedule's id and due time, a message's id).
    Column("trigger", JsonValue, nullable=True),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("last_turn_at", UTCDateTime, nullable=False, default=utcnow),
    Column("completed_at", UTCDateTime, nullable=True),
    Column("archived_at", UTCDateTime, nullable=True),
    Index("ix_tasks_worker_last_turn", "worker_id", "last_turn_at"),
    Index("ix_tasks_organization_created", "organization_id", "created_at"),
    Index("ix_tasks_last_turn_at", "last_turn_at"),  # the prune's candidates (0015)
    UniqueConstraint("organization_id", "public_id"),
)

turns = Table(
    "turns",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("task_id", ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("input", Text, nullable=False),
    Column("budget", String(20), nullable=False, default="standard"),
    Column("status", String(20), nullable=False, default="pending"),
    Column("instructions_version", Integer, nullable=False),
    Column("output_text", Text, nullable=False, default=""),
    Column("structured_output", JsonValue, nullable=True),
    # pydantic-ai messages of this turn (ModelMessagesTypeAdapter JSON), the next turn's history.
    Column("messages", JsonValue, nullable=False, default=list),
    Column("sources", JsonValue, nullable=False, default=list),
    # What the turn's reader should know that its answer does not say: `{code, message}`s (a
    # tool the task needed that the model never called, an MCP server that could not be used).
    Column("notices", JsonValue, nullable=False, default=list),
    Column("input_tokens", Integer, nullable=False, default=0),
    Column("output_tokens", Integer, nullable=False, default=0),
    Column("requests", Integer, nullable=False, default=0),
    Column("credits", Integer, nullable=False, default=0),
    Column("duration_ms", Integer, nullable=False, default=0),
    Column("error_code", String(40), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("started_at", UTCDateTime, nullable=True),
    Column("completed_at", UTCDateTime, nullable=True),
    # Names of the listeners its end concerns (`tasks.listeners`), decided in the block that
    # ended it, so that a turn recovered after its end starts the same ones; NULL until then.
    Column("listeners", JsonValue, nullable=True),
    UniqueConstraint("task_id", "seq"),
    # The turns not yet ended, for the sweeps that look for them at every heartbeat.
    Index(
        "ix_turns_in_flight",
        "status",
        "created_at",
        sqlite_where=text("status IN ('pending', 'running')"),
        postgresql_where=text("status IN ('pending', 'running')"),
    ),
)

# A file a turn put into the worker's workspace (uploaded with it, or written by the agent).
turn_files = Table(
    "turn_files",
    metadata,
    Column("turn_id", ForeignKey("turns.id", ondelete="CASCADE"), primary_key=True),
    Column("path", String(512), primary_key=True),
    Column("media_type", String(200), nullable=False),
    Column("size", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
)
