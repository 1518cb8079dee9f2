"""Tasks, their turns, and the files each turn published into the worker's workspace."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kennel.models.base import Base, JsonValue, UTCDateTime, utcnow

__all__ = ["Task", "Turn", "TurnFile"]


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_worker_last_turn", "worker_id", "last_turn_at"),
        Index("ix_tasks_organization_created", "organization_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    worker_id: Mapped[str] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"))
    created_by_user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), default=None)
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    triggered_by: Mapped[str] = mapped_column(String(20), default="api")
    # The worker's instructions version when the task started; every turn of the task uses it.
    instructions_version: Mapped[int] = mapped_column(Integer)
    # The turn in flight, if any: set with a conditional UPDATE, so two turns never overlap.
    active_turn_id: Mapped[str | None] = mapped_column(String(40), default=None)
    turn_count: Mapped[int] = mapped_column(Integer, default=0)
    credits: Mapped[int] = mapped_column(Integer, default=0)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_turn_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class Turn(Base):
    __tablename__ = "turns"
    __table_args__ = (UniqueConstraint("task_id", "seq"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    input: Mapped[str] = mapped_column(Text)
    budget: Mapped[str] = mapped_column(String(20), default="standard")
    status: Mapped[str] = mapped_column(String(20), default="pending")
    instructions_version: Mapped[int] = mapped_column(Integer)
    output_text: Mapped[str] = mapped_column(Text, default="")
    structured_output: Mapped[dict[str, Any] | None] = mapped_column(JsonValue, default=None)
    # pydantic-ai messages of this turn (ModelMessagesTypeAdapter JSON), the next turn's history.
    messages: Mapped[list[Any]] = mapped_column(JsonValue, default=list)
    sources: Mapped[list[Any]] = mapped_column(JsonValue, default=list)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    credits: Mapped[int] = mapped_column(Integer, default=0)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str | None] = mapped_column(String(40), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class TurnFile(Base):
    """A file a turn put into the worker's workspace (uploaded with it, or written by the agent)."""

    __tablename__ = "turn_files"

    turn_id: Mapped[str] = mapped_column(
        ForeignKey("turns.id", ondelete="CASCADE"), primary_key=True
    )
    path: Mapped[str] = mapped_column(String(512), primary_key=True)
    media_type: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
