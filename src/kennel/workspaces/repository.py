"""The only code that queries workspace files and their chunks."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, bindparam, delete, exists, func, insert, select

from kennel.db import Read, Write, select_rows
from kennel.models import workers, workspace_file_chunks, workspace_files

__all__ = [
    "FileRow",
    "ListedFile",
    "chunk",
    "chunks",
    "existing_workers",
    "files_in_the_way",
    "has_files",
    "insert_chunk",
    "insert_file",
    "is_folder",
    "listing",
    "lock_worker",
    "of_path",
    "remove",
]


class FileRow(NamedTuple):
    id: str  # of this version of the file: a replace makes a new one
    worker_id: str
    path: str
    size: int
    media_type: str
    chunk_count: int
    created_at: datetime
    updated_at: datetime


class ListedFile(NamedTuple):
    path: str
    size: int
    media_type: str


def has_files(worker_id: ColumnElement[Any]) -> ColumnElement[bool]:
    """Whether the worker of `worker_id` has any file: an index probe, for folding into the
    statement that reads the worker."""
    return exists().where(workspace_files.c.worker_id == worker_id).label("has_files")


_files = workspace_files.c
_chunks = workspace_file_chunks.c
# Built once: the listing runs on worker reads, the others on every download.
_LISTING = (
    select_rows(ListedFile, workspace_files)
    .where(_files.worker_id == bindparam("worker_id"))
    .order_by(_files.path)
    .limit(bindparam("limit"))
)
_OF_PATH = select_rows(FileRow, workspace_files).where(
    _files.worker_id == bindparam("worker_id"), _files.path == bindparam("path")
)
_CHUNK = select(_chunks.data).where(
    _chunks.file_id == bindparam("file_id"), _chunks.seq == bindparam("seq")
)
_CHUNKS = select(_chunks.data).where(_chunks.file_id == bindparam("file_id")).order_by(_chunks.seq)
# FOR NO KEY UPDATE: two writes of one worker's files wait for each other, while rows that
# only reference the worker (its tasks, its files) are inserted as usual.
_LOCK_WORKER = (
    select(workers.c.id)
    .where(workers.c.id == bindparam("worker_id"))
    .with_for_update(key_share=True)
)
_REMOVE = (
    delete(workspace_files)
    .where(_files.worker_id == bindparam("worker_id"), _files.path == bindparam("path"))
    .returning(_files.created_at)
)
_INSERT_FILE = insert(workspace_files)
_INSERT_CHUNK = insert(workspace_file_chunks)


async def listing(r: Read, worker_id: str, *, limit: int) -> list[ListedFile]:
    """The worker's first `limit` files by path."""
    rows = await r.all(_LISTING, {"worker_id": worker_id, "limit": limit})
    return [ListedFile._make(row) for row in rows]


async def of_path(r: Read, worker_id: str, path: str) -> FileRow | None:
    row = await r.first(_OF_PATH, {"worker_id": worker_id, "path": path})
    return FileRow._make(row) if row else None


async def chunk(r: Read, file_id: str, seq: int) -> bytes | None:
    """Chunk `seq` of that version of a file; None once the file was replaced or deleted."""
    data = await r.scalar(_CHUNK, {"file_id": file_id, "seq": seq})
    return bytes(data) if data is not None else None


async def chunks(r: Read, file_id: str) -> list[bytes]:
    return [bytes(row[0]) for row in await r.all(_CHUNKS, {"file_id": file_id})]


async def files_in_the_way(r: Read, worker_id: str, folders: Iterable[str]) -> list[str]:
    """Those of `folders` (paths) that are files of the worker."""
    wanted = list(folders)
    if not wanted:
        return []
    rows = await r.all(
        select(_files.path).where(_files.worker_id == worker_id, _files.path.in_(wanted))
    )
    return [row[0] for row in rows]


async def is_folder(r: Read, worker_id: str, path: str) -> bool:
    """Whether some file of the worker lies under `path/`. Compared with `substr`, not LIKE
    (SQLite's LIKE ignores the case of ASCII letters) nor a range (PostgreSQL's collations do
    not order by code point)."""
    prefix = path + "/"
    found = await r.first(
        select(_files.id)
        .where(
            _files.worker_id == worker_id,
            func.substr(_files.path, 1, len(prefix)) == prefix,
        )
        .limit(1)
    )
    return found is not None


async def lock_worker(w: Write, worker_id: str) -> bool:
    """Hold the worker's row until the transaction ends, so that two writes of one worker's
    files take turns (PostgreSQL; SQLite has one writer anyway); whether the worker exists."""
    return await w.first(_LOCK_WORKER, {"worker_id": worker_id}) is not None


async def remove(w: Write, worker_id: str, path: str) -> datetime | None:
    """Delete the file (its chunks go with it); when it was first written, or None."""
    row = await w.first(_REMOVE, {"worker_id": worker_id, "path": path})
    return row[0] if row else None


async def insert_file(w: Write, row: FileRow) -> None:
    await w.execute(_INSERT_FILE, row._asdict())


async def insert_chunk(w: Write, file_id: str, seq: int, data: bytes) -> None:
    await w.execute(_INSERT_CHUNK, {"file_id": file_id, "seq": seq, "data": data})


async def existing_workers(r: Read, worker_ids: Iterable[str]) -> set[str]:
    """Those of `worker_ids` that are workers (deleted ones included: their rows stay)."""
    wanted = list(worker_ids)
    if not wanted:
        return set()
    rows = await r.all(select(workers.c.id).where(workers.c.id.in_(wanted)))
    return {row[0] for row in rows}
