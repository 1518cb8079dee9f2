"""Rows to response shapes: the `WorkerTemplate` and the `Worker` object."""

from __future__ import annotations

from kennel.models import Worker
from kennel.settings import Settings
from kennel.timestamps import iso_z
from kennel.workers.schemas import WorkerState, WorkerTemplate, WorkerUsage

__all__ = ["pending_state", "worker_email", "worker_template", "worker_url"]


def worker_url(settings: Settings, worker_id: str) -> str:
    return f"{settings.public_url}/workers/{worker_id}"


def worker_email(settings: Settings, worker: Worker) -> str:
    return f"{worker.email_local_part}@{settings.mail_domain}"


def worker_template(settings: Settings, worker: Worker) -> WorkerTemplate:
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
        visibility=worker.visibility,  # type: ignore[arg-type]
        email=worker_email(settings, worker),
        url=worker_url(settings, worker.id),
    )


def pending_state(settings: Settings, worker: Worker) -> WorkerState:
    """The `Worker` object of a worker that has never run a task."""
    return WorkerState(
        id=worker.id,
        created_at=int(worker.created_at.timestamp()),
        status="pending",
        running=False,
        output=[],
        output_text="",
        structured_output=None,
        messages=[],
        files=[],
        sources=[],
        usage=WorkerUsage(credits=0, duration_ms=0),
        error=None,
        metadata={"taskId": None, "turnId": None, "triggeredBy": None, "title": worker.title},
        url=worker_url(settings, worker.id),
    )
