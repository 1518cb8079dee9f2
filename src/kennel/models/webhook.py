"""A worker's webhook, the events it is sent and every attempt to deliver one."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint

from kennel.models.base import UTCDateTime, metadata, utcnow

__all__ = ["webhook_events", "webhook_executions", "webhooks"]

# One per worker. The token is kept as it is: the API shows it and deliveries are signed with
# it, so it must be read back (an API key, which is never shown again, is kept hashed).
webhooks = Table(
    "webhooks",
    metadata,
    Column("worker_id", ForeignKey("workers.id", ondelete="CASCADE"), primary_key=True),
    Column("url", String(2048), nullable=False),
    Column("token", String(128), nullable=False),
    # After a rotation, deliveries are also signed with the previous token until this time.
    Column("previous_token", String(128), nullable=True),
    Column("previous_token_until", UTCDateTime, nullable=True),
    # Bumped whenever the URL changes or the webhook is removed: retries of events made under
    # an older version stop.
    Column("version", Integer, nullable=False, default=1),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
)

# What a turn's end is sent as: the body is fixed when the event is made, so every attempt (and
# a redelivery) sends the same bytes under the same `webhook-id`.
webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("worker_id", ForeignKey("workers.id", ondelete="CASCADE"), nullable=False),
    Column("turn_id", String(40), nullable=False),
    Column("type", String(40), nullable=False),
    Column("body", Text, nullable=False),
    Column("webhook_version", Integer, nullable=False),
    Column("task_id", String(128), nullable=False),
    Column("task_title", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    UniqueConstraint("worker_id", "turn_id"),
    Index("ix_webhook_events_created_at", "created_at"),  # old deliveries, by date (0015)
)

# One row per attempt, written before the POST is sent and finished after it, so that a crash
# in between leaves the attempt in the log (as `unknown`) instead of no trace of it.
webhook_executions = Table(
    "webhook_executions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("event_id", ForeignKey("webhook_events.id", ondelete="CASCADE"), nullable=False),
    Column("worker_id", ForeignKey("workers.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("url", String(2048), nullable=False),
    # pending (written, not yet sent) | sending | success | error | unknown (the process stopped
    # while it was being sent: the receiver may or may not have got it)
    Column("request_status", String(10), nullable=False),
    Column("response_status", Integer, nullable=True),
    Column("error_message", Text, nullable=True),
    Column("response_excerpt", Text, nullable=False, default=""),
    Column("duration_ms", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    UniqueConstraint("event_id", "attempt"),
    Index("ix_webhook_executions_worker_created", "worker_id", "created_at"),
)
