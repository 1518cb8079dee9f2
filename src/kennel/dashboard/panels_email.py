"""The worker page's E-mail panel: the worker's address, and who besides its organization may
write to it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from kennel.api.errors import ApiError
from kennel.auth import Caller
from kennel.core.runtime import Runtime, of_request
from kennel.dashboard import forms, panel_forms
from kennel.dashboard.auth import SignedInDep
from kennel.dashboard.flash import flash_redirect
from kennel.dashboard.routes import render_worker_page
from kennel.dashboard.routing import DashboardRoute
from kennel.mail import service
from kennel.workers.repository import WorkerRow

__all__ = ["email_panel", "router"]

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)


async def email_panel(rt: Runtime, caller: Caller, worker: WorkerRow) -> dict[str, Any]:
    """The panel's context: the allow-list (the address is in the page's context already)."""
    return {"senders": await service.get_allowed_senders(rt.db, caller, worker.id)}


@router.post("/workers/{worker_id}/email/senders")
async def set_allowed_senders(worker_id: str, request: Request, who: SignedInDep) -> Response:
    """Replace the allow-list with the text area's lines."""
    rt = of_request(request)
    form = await forms.read_signed_form(request, who)
    try:
        senders = panel_forms.allowed_senders(form)
        await service.set_allowed_senders(rt.db, who.caller, worker_id, senders)
    except ApiError as exc:
        if exc.status != 400:
            raise
        return await render_worker_page(
            request,
            who,
            worker_id,
            panel_errors={exc.param or "email": exc.message},
            panel_values=form.fields,
            status=exc.status,
        )
    return flash_redirect(f"/workers/{worker_id}#panel-email", "senders-saved")
