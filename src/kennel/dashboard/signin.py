"""Signing in with an API key, and out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from kennel.api.http import read_form
from kennel.auth.sessions import end_session, session_caller, start_session
from kennel.core.runtime import of_request
from kennel.dashboard.auth import (
    SignedInDep,
    clear_session_cookie,
    login_token_checks,
    new_login_token,
    safe_next,
    session_cookie_name,
    set_login_cookie,
    set_session_cookie,
)
from kennel.dashboard.forms import read_signed_form
from kennel.dashboard.routing import DashboardRoute, redirect
from kennel.dashboard.templating import render

__all__ = ["router"]

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

_MAX_KEY_FIELD = 512


async def _login_page(
    request: Request, next_path: str, *, error: str = "", status: int = 200
) -> Response:
    token = await new_login_token(of_request(request))
    response = render(
        "login.html",
        {"next": next_path, "csrf": token, "error": error, "signed_in": None},
        status_code=status,
    )
    set_login_cookie(response, of_request(request).settings, token)
    return response


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    """The sign-in form (or straight on, for a browser signed in already)."""
    rt = of_request(request)
    target = safe_next(next)
    session_id = request.cookies.get(session_cookie_name(rt.settings))
    if session_id:
        caller = await session_caller(
            rt.db, session_id, idle_seconds=rt.settings.session_idle_seconds
        )
        if caller is not None:
            return redirect(target)
    return await _login_page(request, target)


@router.post("/login")
async def login(request: Request) -> Response:
    """Sign in: a valid API key opens a session; the key itself stays out of the browser."""
    rt = of_request(request)
    form = await read_form(request, max_files=0, max_fields=10)
    try:
        key = str(form.get("api_key") or "").strip()[:_MAX_KEY_FIELD]
        target = safe_next(str(form.get("next") or ""))
        submitted = str(form.get("csrf") or "")
    finally:
        await form.close()
    if not await login_token_checks(request, rt, submitted):
        message = "The sign-in form had expired or came from another site; please sign in again."
        return await _login_page(request, target, error=message, status=403)
    started = await start_session(rt.db, key, idle_seconds=rt.settings.session_idle_seconds)
    if started is None:
        return await _login_page(request, target, error="That API key is not valid.", status=401)
    request.state.caller_user_id = started.caller.user_id
    response = redirect(target)
    set_session_cookie(response, rt.settings, started.session_id)
    return response


@router.post("/logout")
async def logout(request: Request, who: SignedInDep) -> Response:
    """Sign out: the session ends on the server, not only in this browser."""
    rt = of_request(request)
    await read_signed_form(request, who)
    await end_session(rt.db, who.session_id)
    response = redirect("/login")
    clear_session_cookie(response, rt.settings)
    return response
