"""The processes running DBOS workflows on this database, and when each last said so."""

from __future__ import annotations

from sqlalchemy import Column, Integer, String, Table

from kennel.models.base import UTCDateTime, metadata

__all__ = ["executors"]

executors = Table(
    "executors",
    metadata,
    Column("executor_id", String(100), primary_key=True),  # DBOS's executor id
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    # Written every KENNEL_HEARTBEAT_SECONDS; left behind by a process that stopped (set far
    # back by one that stopped on purpose), after which another takes its work over.
    Column("heartbeat_at", UTCDateTime, nullable=False, index=True),
)
