"""Worker templates, their instruction versions and the members of private workers."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Integer, String, Table, Text

from kennel.models.base import JsonValue, UTCDateTime, metadata, utcnow

__all__ = ["worker_instruction_versions", "worker_members", "workers"]

workers = Table(
    "workers",
    metadata,
    Column("id", String(40), primary_key=True),
    Column(
        "organization_id",
        ForeignKey("organizations.id", ondelete="CASCADE"),
        index=True,
        nullable=False,
    ),
    Column("user_id", ForeignKey("users.id"), nullable=False),
    Column("title", String(200), nullable=False),
    Column("summary", String(80), nullable=False, default=""),
    Column("instructions", Text, nullable=False, default=""),
    Column("instructions_version", Integer, nullable=False, default=1),
    Column("output_schema", JsonValue, nullable=True),
    Column("visibility", String(10), nullable=False, default="public"),
    # Names of the organization's MCP servers whose tools the worker's agent may call.
    Column("mcp_servers", JsonValue, nullable=False, default=list),
    Column("email_local_part", String(64), unique=True, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
    # Soft delete: tasks and their history keep pointing at the row; the API answers 404.
    Column("deleted_at", UTCDateTime, nullable=True),
)

# Every version of a worker's instructions; a task runs on the one current at its start.
worker_instruction_versions = Table(
    "worker_instruction_versions",
    metadata,
    Column("worker_id", ForeignKey("workers.id", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("instructions", Text, nullable=False),
    Column("created_by_user_id", ForeignKey("users.id"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
)

# Users invited to a private worker.
worker_members = Table(
    "worker_members",
    metadata,
    Column("worker_id", ForeignKey("workers.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
)
