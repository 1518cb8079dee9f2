"""Decisions about a worker's webhook: what may be set, tokens and their rotation, the log."""

from __future__ import annotations

from datetime import timedelta

from kennel.api.errors import BadRequest, NotFound
from kennel.auth import Caller
from kennel.core.addresses import WebhookUrlError, check_url_resolving
from kennel.core.settings import Settings
from kennel.core.timestamps import utcnow
from kennel.db import Database, Write
from kennel.webhooks import repository as repo
from kennel.webhooks.repository import ExecutionRow, WebhookRow
from kennel.webhooks.signing import new_token
from kennel.webhooks.workflows import redeliver as send_again
from kennel.workers import service as workers_service
from kennel.workers.events import on_worker_deleted

__all__ = [
    "EXECUTIONS_PAGE_SIZE",
    "delivery_bodies",
    "get_execution",
    "get_webhook",
    "list_executions",
    "redeliver",
    "regenerate_token",
    "remove_webhook",
    "set_webhook",
]

EXECUTIONS_PAGE_SIZE = 50  # as the official docs page them


async def get_webhook(db: Database, caller: Caller, worker_id: str) -> WebhookRow | None:
    async with db.read() as r:
        worker = await workers_service.visible_worker(r, caller, worker_id)
        return await repo.by_worker(r, worker.id)


async def set_webhook(
    db: Database, settings: Settings, caller: Caller, worker_id: str, url: str | None
) -> WebhookRow | None:
    """Point the webhook at `url` (checked, names resolved) or, with None, remove it."""
    if url is None:
        await remove_webhook(db, caller, worker_id)
        return None
    await workers_service.get_worker(db, caller, worker_id)  # 404 before any DNS work
    try:
        # Outside the transaction: a slow resolver holds no lock.
        checked = await check_url_resolving(
            url,
            allow_private=settings.allow_private_webhooks,
            allowed_networks=settings.webhook_allowed_networks,
        )
    except WebhookUrlError as exc:
        raise BadRequest(f"url: {exc}", param="url") from None
    async with db.write() as w:
        worker = await workers_service.visible_worker(w, caller, worker_id)
        return await repo.set_url(w, worker.id, checked, new_token())


async def remove_webhook(db: Database, caller: Caller, worker_id: str) -> None:
    """Remove the webhook and its token; retries of earlier events stop."""
    async with db.write() as w:
        worker = await workers_service.visible_worker(w, caller, worker_id)
        await repo.remove(w, worker.id)


async def regenerate_token(
    db: Database, settings: Settings, caller: Caller, worker_id: str
) -> WebhookRow:
    """A new token; for the grace period deliveries are signed with the old one too."""
    grace = utcnow() + timedelta(seconds=settings.webhook_rotation_grace_seconds)
    async with db.write() as w:
        worker = await workers_service.visible_worker(w, caller, worker_id)
        rotated = await repo.rotate_token(w, worker.id, new_token(), grace)
    if rotated is None:
        raise NotFound("webhook of worker", worker_id)
    return rotated


async def list_executions(
    db: Database, caller: Caller, worker_id: str, *, page: int, in_flight: bool = False
) -> tuple[list[ExecutionRow], int]:
    """A page of delivery attempts, newest first, and the total; those still being sent only
    with `in_flight` (the API lists an attempt once it has an answer, or none for good)."""
    async with db.read() as r:
        worker = await workers_service.visible_worker(r, caller, worker_id)
        rows, total = await repo.page_of_executions(
            r, worker.id, page=page, size=EXECUTIONS_PAGE_SIZE, in_flight=in_flight
        )
    return rows, total


async def delivery_bodies(
    db: Database, caller: Caller, worker_id: str, executions: list[ExecutionRow]
) -> dict[str, str]:
    """`{event id: the request body its attempts sent}` for these attempts of the worker."""
    async with db.read() as r:
        worker = await workers_service.visible_worker(r, caller, worker_id)
        ids = sorted({x.event_id for x in executions})
        return await repo.event_bodies(r, worker.id, ids)


async def get_execution(
    db: Database, caller: Caller, worker_id: str, execution_id: str
) -> ExecutionRow:
    """One delivery attempt of a worker the caller may see (404 otherwise)."""
    async with db.read() as r:
        worker = await workers_service.visible_worker(r, caller, worker_id)
        found = await repo.execution(r, worker.id, execution_id)
    if found is None:
        raise NotFound("execution", execution_id)
    return found


async def redeliver(
    db: Database, caller: Caller, worker_id: str, execution_id: str
) -> ExecutionRow | None:
    """Send an attempt's event once more, now; the new attempt (None: no such execution)."""
    async with db.read() as r:
        worker = await workers_service.visible_worker(r, caller, worker_id)
        found = await repo.execution(r, worker.id, execution_id)
    if found is None:
        return None
    if await get_webhook(db, caller, worker_id) is None:
        raise NotFound("webhook of worker", worker_id)
    new_id = await send_again(found.event_id)
    if new_id is None:  # the webhook was removed meanwhile
        raise NotFound("webhook of worker", worker_id)
    async with db.read() as r:
        return await repo.execution(r, worker_id, new_id)


async def _remove_webhook_of_deleted(w: Write, worker_id: str) -> None:
    await repo.remove(w, worker_id)


on_worker_deleted("webhooks", _remove_webhook_of_deleted)
