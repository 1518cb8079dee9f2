"""The worker page's Webhook panel: the URL (set, remove), the token shown on request,
regenerate, and the log of delivery attempts with Redeliver."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from kennel.api.errors import ApiError, NotFound
from kennel.auth import Caller
from kennel.core.runtime import Runtime, of_request
from kennel.core.timestamps import utcnow
from kennel.dashboard import forms, panel_forms
from kennel.dashboard.auth import SignedIn, SignedInDep
from kennel.dashboard.confirm import require_confirmed
from kennel.dashboard.deliveries import sent_request
from kennel.dashboard.flash import flash_redirect
from kennel.dashboard.forms import SubmittedForm
from kennel.dashboard.routes import render_worker_page
from kennel.dashboard.routing import DashboardRoute
from kennel.dashboard.templating import render
from kennel.webhooks import service
from kennel.workers import service as workers_service
from kennel.workers.repository import WorkerRow

__all__ = ["router", "webhook_panel"]

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

DETAILS_INLINE = 10


async def webhook_panel(rt: Runtime, caller: Caller, worker: WorkerRow) -> dict[str, Any]:
    """The panel's context: the webhook (None when unset) and the newest delivery attempts,
    those being sent included, each with what it sent."""
    webhook = await service.get_webhook(rt.db, caller, worker.id)
    executions, total = await service.list_executions(
        rt.db, caller, worker.id, page=1, in_flight=True
    )
    # What the newest attempts sent, on the page; the older ones' on a page of their own
    # (measured: 50 attempts' details weighed 300 KiB, on a page reloaded after every turn).
    inline = executions[:DETAILS_INLINE]
    bodies = await service.delivery_bodies(rt.db, caller, worker.id, inline)
    previous_until = None
    if webhook and webhook.previous_token_until and webhook.previous_token_until > utcnow():
        previous_until = webhook.previous_token_until
    return {
        "webhook": webhook,
        "previous_until": previous_until,
        "executions": executions,
        "total": total,
        "sent": {x.id: sent_request(x, bodies.get(x.event_id, "")) for x in inline},
    }


async def _ask(
    rt: Runtime, who: SignedIn, form: SubmittedForm, kind: str, worker_id: str, action: str
) -> None:
    """Confirm first; the question is asked only of a webhook the user may see."""
    if await service.get_webhook(rt.db, who.caller, worker_id) is None:
        raise NotFound("webhook of worker", worker_id)
    require_confirmed(form, kind, action=action, back=f"/workers/{worker_id}#panel-webhook")


def _back(worker_id: str, flash: str) -> Response:
    return flash_redirect(f"/workers/{worker_id}#panel-webhook", flash)


@router.post("/workers/{worker_id}/webhook")
async def set_webhook(worker_id: str, request: Request, who: SignedInDep) -> Response:
    """Point the webhook at the form's URL (its token is kept, or made when it is new)."""
    rt = of_request(request)
    form = await forms.read_signed_form(request, who)
    try:
        url = panel_forms.webhook_url(form)
        await service.set_webhook(rt.db, rt.settings, who.caller, worker_id, url)
    except ApiError as exc:
        if exc.status != 400:
            raise
        return await render_worker_page(
            request,
            who,
            worker_id,
            panel_errors={exc.param or "webhook": exc.message},
            panel_values=form.fields,
            status=exc.status,
        )
    return _back(worker_id, "webhook-saved")


@router.post("/workers/{worker_id}/webhook/remove")
async def remove_webhook(worker_id: str, request: Request, who: SignedInDep) -> Response:
    """Remove the webhook and its token; retries of earlier events stop."""
    rt = of_request(request)
    form = await forms.read_signed_form(request, who)
    await _ask(rt, who, form, "remove-webhook", worker_id, request.url.path)
    await service.remove_webhook(rt.db, who.caller, worker_id)
    return _back(worker_id, "webhook-removed")


@router.post("/workers/{worker_id}/webhook/token")
async def regenerate_token(worker_id: str, request: Request, who: SignedInDep) -> Response:
    """A new token; the old one still signs deliveries for the grace period."""
    rt = of_request(request)
    form = await forms.read_signed_form(request, who)
    await _ask(rt, who, form, "regenerate-token", worker_id, request.url.path)
    await service.regenerate_token(rt.db, rt.settings, who.caller, worker_id)
    return _back(worker_id, "token-regenerated")


@router.get("/workers/{worker_id}/webhook/executions/{execution_id}")
async def delivery_page(
    worker_id: str, execution_id: str, request: Request, who: SignedInDep
) -> Response:
    """One delivery attempt: what it sent (the token masked) and what came back."""
    rt = of_request(request)
    worker = await workers_service.get_worker(rt.db, who.caller, worker_id)
    found = await service.get_execution(rt.db, who.caller, worker.id, execution_id)
    bodies = await service.delivery_bodies(rt.db, who.caller, worker.id, [found])
    sent = sent_request(found, bodies.get(found.event_id, ""))
    context = {"signed_in": who, "csrf": who.csrf, "worker": worker, "x": found, "sent": sent}
    return render("delivery.html", context)


@router.post("/workers/{worker_id}/webhook/executions/{execution_id}/redeliver")
async def redeliver(
    worker_id: str, execution_id: str, request: Request, who: SignedInDep
) -> Response:
    """Send that attempt's event again now, as a new attempt (it waits for the answer)."""
    rt = of_request(request)
    await forms.read_signed_form(request, who)
    if await service.redeliver(rt.db, who.caller, worker_id, execution_id) is None:
        raise NotFound("execution", execution_id)
    return _back(worker_id, "redelivered")
