"""Mail the listener took in, the Message-IDs that thread it to tasks, and who may write."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from kennel.models.base import UTCDateTime, metadata, utcnow

__all__ = ["mail_messages", "mail_threads", "worker_mail_senders"]

# One row per message and worker it was sent to, stored before the listener answers 250.
mail_messages = Table(
    "mail_messages",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("worker_id", ForeignKey("workers.id", ondelete="CASCADE"), nullable=False),
    Column("envelope_from", String(320), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("peer", String(64), nullable=False),
    Column("raw", LargeBinary, nullable=False),
    # stored -> started | refused | failed; the reason says why it started nothing.
    Column("status", String(10), nullable=False, default="stored"),
    Column("reason", Text, nullable=True),
    Column("message_id", String(998), nullable=True),
    Column("sender", String(320), nullable=True),  # the trusted From: address
    Column("subject", Text, nullable=True),
    Column("task_id", ForeignKey("tasks.id", ondelete="SET NULL"), nullable=True),
    Column("turn_id", String(40), nullable=True),
    # The answer: pending -> sent | failed (after every retry); its own Message-ID.
    Column("reply_status", String(10), nullable=True),
    Column("reply_message_id", String(998), nullable=True),
    Column("reply_error", Text, nullable=True),
    Column("received_at", UTCDateTime, nullable=False, default=utcnow),
    Index("ix_mail_messages_turn_id", "turn_id"),
    Index("ix_mail_messages_status", "status"),
    Index("ix_mail_messages_task_id", "task_id"),  # a deleted task's SET NULL (0015)
)

# Message-IDs of a task's mail, received and sent: a reply naming one continues that task.
mail_threads = Table(
    "mail_threads",
    metadata,
    Column("worker_id", ForeignKey("workers.id", ondelete="CASCADE"), primary_key=True),
    Column("message_id", String(998), primary_key=True),
    Column("task_id", ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Index("ix_mail_threads_task_id", "task_id"),  # a deleted task's cascade (0015)
)

# Addresses (`ann@example.com`) and domains (`@example.com`) allowed to write to a worker
# besides the members of its organization.
worker_mail_senders = Table(
    "worker_mail_senders",
    metadata,
    Column("worker_id", ForeignKey("workers.id", ondelete="CASCADE"), nullable=False),
    Column("pattern", String(320), nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    UniqueConstraint("worker_id", "pattern"),
)
