"""HTTP routes of the Webhooks API: parse, authorize, call the service, render."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from kennel.api.errors import NotFound
from kennel.api.http import KennelRoute, page_count
from kennel.auth import CallerDep
from kennel.core.runtime import of_request
from kennel.core.timestamps import iso_z
from kennel.webhooks import service
from kennel.webhooks.repository import ExecutionRow, WebhookRow
from kennel.webhooks.schemas import Webhook, WebhookExecution, WebhookExecutionList, WebhookUpdate

__all__ = ["router"]

router = APIRouter(
    prefix="/api/workers/{workerId}/webhook", tags=["Webhooks"], route_class=KennelRoute
)


def _webhook(row: WebhookRow | None) -> Webhook:
    return Webhook(url=row.url, token=row.token) if row else Webhook(url=None, token=None)


def _execution(row: ExecutionRow) -> WebhookExecution:
    return WebhookExecution(
        id=row.id,
        worker_id=row.worker_id,
        event_id=row.event_id,
        attempt=row.attempt,
        url=row.url,
        # The contract knows two; an attempt cut off by a crash is not a success.
        request_status="success" if row.request_status == "success" else "error",
        outcome=row.request_status,  # type: ignore[arg-type]  # only finished rows are listed
        response_status=row.response_status,
        error_message=row.error_message,
        response_excerpt=row.response_excerpt,
        duration_ms=row.duration_ms,
        task_id=row.task_id,
        task_title=row.task_title,
        created_at=iso_z(row.created_at),
    )


@router.get("", response_model=Webhook)
async def retrieve_webhook(workerId: str, request: Request, caller: CallerDep) -> Webhook:
    """Retrieve a worker's webhook (`url` and `token` are null when none is set)."""
    rt = of_request(request)
    return _webhook(await service.get_webhook(rt.db, caller, workerId))


@router.put("", response_model=Webhook)
async def update_webhook(
    workerId: str, body: WebhookUpdate, request: Request, caller: CallerDep
) -> Webhook:
    """Set a worker's webhook URL (keeping its token); `url: null` removes it."""
    rt = of_request(request)
    return _webhook(await service.set_webhook(rt.db, rt.settings, caller, workerId, body.url))


@router.delete("", response_model=Webhook)
async def delete_webhook(workerId: str, request: Request, caller: CallerDep) -> Webhook:
    """Remove a worker's webhook and clear its token."""
    rt = of_request(request)
    await service.remove_webhook(rt.db, caller, workerId)
    return Webhook(url=None, token=None)


@router.post("/regenerate-token", response_model=Webhook)
async def regenerate_webhook_token(workerId: str, request: Request, caller: CallerDep) -> Webhook:
    """Give a worker's webhook a new token (404 when none is set); the old one still signs
    deliveries for the grace period."""
    rt = of_request(request)
    return _webhook(await service.regenerate_token(rt.db, rt.settings, caller, workerId))


@router.get("/executions", response_model=WebhookExecutionList)
async def list_webhook_executions(
    workerId: str,
    request: Request,
    caller: CallerDep,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> WebhookExecutionList:
    """List a worker's webhook delivery attempts, newest first, 50 a page."""
    rt = of_request(request)
    rows, total = await service.list_executions(rt.db, caller, workerId, page=page)
    pages = page_count(total, service.EXECUTIONS_PAGE_SIZE)
    return WebhookExecutionList(
        logs=[_execution(row) for row in rows], page=page, page_count=pages, total_count=total
    )


@router.post("/executions/{executionId}/redeliver", response_model=WebhookExecution)
async def redeliver_webhook_execution(
    workerId: str, executionId: str, request: Request, caller: CallerDep
) -> WebhookExecution:
    """Send that attempt's event again now, with the same `webhook-id`, as a new attempt."""
    rt = of_request(request)
    row = await service.redeliver(rt.db, caller, workerId, executionId)
    if row is None:
        raise NotFound("execution", executionId)
    return _execution(row)
