"""Rows to response shapes: the `WorkerTemplate`, and the URLs of a worker and its files."""

from __future__ import annotations

from typing import Protocol
from urllib.parse import quote

from kennel.core.settings import Settings
from kennel.core.timestamps import iso_z
from kennel.workers.repository import WorkerRow
from kennel.workers.schemas import WorkerFile, WorkerTemplate

__all__ = ["file_url", "worker_email", "worker_template", "worker_url"]


def worker_url(settings: Settings, worker_id: str) -> str:
    return f"{settings.base_url}/workers/{worker_id}"


def file_url(settings: Settings, worker_id: str, path: str) -> str:
    return f"{settings.base_url}/api/workers/{worker_id}/files/{quote(path)}"


class StoredFile(Protocol):
    """A file of a workspace or of a turn: what a `WorkerFile` shows of it."""

    @property
    def path(self) -> str: ...
    @property
    def media_type(self) -> str: ...
    @property
    def size(self) -> int: ...


def worker_file(settings: Settings, worker_id: str, stored: StoredFile) -> WorkerFile:
    return WorkerFile(
        filename=stored.path,
        media_type=stored.media_type,
        url=file_url(settings, worker_id, stored.path),
        size=stored.size,
    )


def worker_email(settings: Settings, worker: WorkerRow) -> str:
    return f"{worker.email_local_part}@{settings.mail_domain}"


def worker_template(settings: Settings, worker: WorkerRow) -> WorkerTemplate:
    return WorkerTemplate(
        id=worker.id,
        created_at=iso_z(worker.created_at),
        updated_at=iso_z(worker.updated_at),
        organization_id=worker.organization_id,
        user_id=worker.user_id,
        title=worker.title,
        summary=worker.summary,
        instructions=worker.instructions,
        instructions_version=worker.instructions_version,
        output_schema=worker.output_schema,
        visibility=worker.visibility,  # type: ignore[arg-type]  # the column holds the two values
        email=worker_email(settings, worker),
        url=worker_url(settings, worker.id),
        mcp_servers=worker.mcp_servers,
    )
