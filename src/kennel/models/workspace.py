"""Workers' workspace files, kept in the database so that every process serves the same ones.

A file is one row of `workspace_files` and its bytes are rows of `workspace_file_chunks`
(`kennel.workspaces.store.CHUNK_BYTES` each, the last one shorter), so a download reads them one
at a time. Replacing a file deletes its row (its chunks go with it) and adds a new row with a
new id in the same transaction: a reader sees the old file or the new one, never a mix.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
)

from kennel.models.base import UTCDateTime, metadata, utcnow

__all__ = ["workspace_file_chunks", "workspace_files"]

workspace_files = Table(
    "workspace_files",
    metadata,
    Column("id", String(40), primary_key=True),  # new for each version of the file
    Column("worker_id", ForeignKey("workers.id", ondelete="CASCADE"), nullable=False),
    # Relative, POSIX separators, as `kennel.workspaces.names.clean_path` makes it.
    Column("path", String(512), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("media_type", String(200), nullable=False),
    Column("chunk_count", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),  # kept by a replace
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
    # Also the index of a worker's listing and of the "has it any files" probe.
    UniqueConstraint("worker_id", "path"),
)

workspace_file_chunks = Table(
    "workspace_file_chunks",
    metadata,
    Column("file_id", ForeignKey("workspace_files.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),  # 0, 1, ...
    Column("data", LargeBinary, nullable=False),
)
