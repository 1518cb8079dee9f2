"""Idempotency keys a client sent with a POST: the request they stand for and what it made."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, PrimaryKeyConstraint, String, Table

from kennel.models.base import UTCDateTime, metadata, utcnow

__all__ = ["idempotency_keys"]

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column(
        "organization_id",
        ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("operation", String(40), nullable=False),  # "create_task", "create_worker"
    Column("key", String(255), nullable=False),
    # SHA-256 of the request as parsed: the same key with another request is a 409.
    Column("request_hash", String(64), nullable=False),
    Column("resource_id", String(64), nullable=False),  # the turn's id, or the worker's
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    PrimaryKeyConstraint("organization_id", "operation", "key"),
)
