"""Worker templates, their instruction versions and the members of private workers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kennel.models.base import Base, JsonValue, UTCDateTime, utcnow

__all__ = ["Worker", "WorkerInstructionVersion", "WorkerMember"]


class Worker(Base):
    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(String(80), default="")
    instructions: Mapped[str] = mapped_column(Text, default="")
    instructions_version: Mapped[int] = mapped_column(Integer, default=1)
    output_schema: Mapped[dict[str, Any] | None] = mapped_column(JsonValue, default=None)
    visibility: Mapped[str] = mapped_column(String(10), default="public")
    email_local_part: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Soft delete: tasks and their history keep pointing at the row; the API answers 404.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class WorkerInstructionVersion(Base):
    """Every version of a worker's instructions; a task runs on the one current at its start."""

    __tablename__ = "worker_instruction_versions"

    worker_id: Mapped[str] = mapped_column(
        ForeignKey("workers.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    instructions: Mapped[str] = mapped_column(Text)
    created_by_user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WorkerMember(Base):
    """A user invited to a private worker."""

    __tablename__ = "worker_members"

    worker_id: Mapped[str] = mapped_column(
        ForeignKey("workers.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
