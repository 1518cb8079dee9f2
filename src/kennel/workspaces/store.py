"""`Workspace`: the files of one worker, in the database (`kennel.models.workspace`).

Every process on the database sees the same files: a turn runs on whichever process dequeues
it, and a download may reach another process than the upload did. The store is this one class
(with its repository), so another backend, an S3-compatible bucket say, could take its place
behind the same methods.

- A write is one transaction: the worker's row is locked (two writes of one worker take turns,
  so the file-and-folder rule holds under races), the old version deleted, the new one and its
  chunks inserted. Inside a caller's write block it joins that block, so a turn's uploads
  commit with the turn or not at all.
- A read of a whole file (`read`) reads its chunks in one snapshot. A download (`chunks`) reads
  them one statement at a time, holding no connection between them; if the file is replaced
  meanwhile, the next chunk is gone and `FileReplaced` ends the download short (its
  Content-Length tells the client), so it never mixes two versions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from kennel.core.ids import new_id
from kennel.core.timestamps import utcnow
from kennel.db import Database
from kennel.workspaces import repository as repo
from kennel.workspaces.names import WorkspaceError, clean_path, media_type_of

__all__ = [
    "CHUNK_BYTES",
    "MAX_LISTED",
    "FileReplaced",
    "StoredFile",
    "Workspace",
    "WorkspaceFile",
    "listed_files",
]

# 512 KiB: a 25 MiB file (the default KENNEL_MAX_FILE_BYTES) is 50 rows, and a download holds
# one chunk in memory at a time.
CHUNK_BYTES = 512 * 1024
MAX_LISTED = 1000


@dataclass(frozen=True, slots=True)
class WorkspaceFile:
    path: str  # relative, POSIX separators
    size: int
    media_type: str


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One version of a file, as a download reads it."""

    id: str
    path: str
    size: int
    media_type: str
    chunk_count: int
    updated_at: datetime


class FileReplaced(RuntimeError):
    """The file changed (or went) while it was being read."""


class Workspace:
    """The files of one worker."""

    media_type_of = staticmethod(media_type_of)
    clean_path = staticmethod(clean_path)

    def __init__(
        self, db: Database, worker_id: str, *, max_file_bytes: int, chunk_bytes: int = CHUNK_BYTES
    ) -> None:
        self.db = db
        self.worker_id = worker_id
        self.max_file_bytes = max_file_bytes
        self.chunk_bytes = chunk_bytes

    async def check_writable(self, relative: str) -> None:
        """WorkspaceError when writing `relative` (a clean path) would put a file where a
        folder is, or inside a file."""
        parts = relative.split("/")
        folders = ["/".join(parts[:n]) for n in range(1, len(parts))]
        async with self.db.read() as r:
            in_the_way = await repo.files_in_the_way(r, self.worker_id, folders)
            if in_the_way:
                folder = min(in_the_way, key=len)
                raise WorkspaceError(f"{folder!r} is a file, so {relative!r} cannot be made in it")
            if await repo.is_folder(r, self.worker_id, relative):
                raise WorkspaceError(f"{relative!r} is a folder; a file cannot take its name")

    async def write(self, name: str, data: bytes) -> WorkspaceFile:
        """Write (or replace) the file, whole, in one transaction."""
        relative = clean_path(name)
        if len(data) > self.max_file_bytes:
            raise WorkspaceError(f"{relative!r} is larger than {self.max_file_bytes} bytes")
        media_type = media_type_of(relative)
        step = self.chunk_bytes
        pieces = [data[at : at + step] for at in range(0, len(data), step)]  # none: empty
        async with self.db.write() as w:
            if not await repo.lock_worker(w, self.worker_id):
                raise LookupError(f"no worker {self.worker_id}")
            await self.check_writable(relative)  # reads through this transaction
            now = utcnow()
            created_at = await repo.remove(w, self.worker_id, relative)
            file_id = new_id("fil")
            await repo.insert_file(
                w,
                repo.FileRow(
                    file_id,
                    self.worker_id,
                    relative,
                    len(data),
                    media_type,
                    len(pieces),
                    created_at or now,
                    now,
                ),
            )
            for seq, piece in enumerate(pieces):
                await repo.insert_chunk(w, file_id, seq, piece)
                if seq:
                    # SQLite runs statements on the event loop: let requests in between.
                    await asyncio.sleep(0)
        return WorkspaceFile(relative, len(data), media_type)

    async def file(self, name: str) -> StoredFile | None:
        """The file of that name, or None (a name the workspace refuses names no file)."""
        try:
            relative = clean_path(name)
        except WorkspaceError:
            return None
        async with self.db.read(snapshot=False) as r:
            row = await repo.of_path(r, self.worker_id, relative)
        if row is None:
            return None
        return StoredFile(
            row.id, row.path, row.size, row.media_type, row.chunk_count, row.updated_at
        )

    async def read(self, name: str) -> bytes:
        """The whole file; FileNotFoundError when there is none."""
        relative = clean_path(name)
        async with self.db.read() as r:
            row = await repo.of_path(r, self.worker_id, relative)
            if row is None:
                raise FileNotFoundError(name)
            return b"".join(await repo.chunks(r, row.id))

    async def chunks(self, file: StoredFile) -> AsyncIterator[bytes]:
        """The file's bytes a chunk at a time, each read on its own (see the module's
        docstring); FileReplaced if it changes meanwhile."""
        for seq in range(file.chunk_count):
            async with self.db.read(snapshot=False) as r:
                data = await repo.chunk(r, file.id, seq)
            if data is None:
                raise FileReplaced(f"{file.path!r} was replaced while it was read")
            yield data

    async def list(self) -> list[WorkspaceFile]:
        """The worker's files by path, at most MAX_LISTED."""
        async with self.db.read(snapshot=False) as r:
            rows = await repo.listing(r, self.worker_id, limit=MAX_LISTED)
        return listed_files(rows)


def listed_files(rows: list[repo.ListedFile]) -> list[WorkspaceFile]:
    """Rows of a listing as files, in code point order on both backends (PostgreSQL's
    collation may order paths otherwise)."""
    return sorted((WorkspaceFile(*row) for row in rows), key=lambda f: f.path)
