"""The dashboard's 404 page for addresses no route serves: inside the layout, with the
navigation for a signed-in browser, instead of the API's JSON error."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import cast

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException
from starlette.responses import Response

from kennel.dashboard.auth import SignInRequired, signed_in
from kennel.dashboard.routing import error_page

__all__ = ["install_not_found_page"]

Handler = Callable[[Request, Exception], Awaitable[Response]]
# The API and the machine-read endpoints keep the contract's JSON errors.
_NOT_PAGES = ("/api/", "/docs", "/openapi.json", "/healthz", "/readyz", "/metrics", "/static/")


def _wants_page(request: Request) -> bool:
    if request.method not in ("GET", "HEAD") or request.url.path.startswith(_NOT_PAGES):
        return False
    return "text/html" in request.headers.get("accept", "")


def install_not_found_page(app: FastAPI) -> None:
    """Answer a browser's 404 with the dashboard's page; everything else as before (the API's
    handler, which must be installed first)."""
    found = app.exception_handlers.get(HTTPException)
    if found is None:
        raise RuntimeError("install the API's error handlers before the dashboard")
    api_handler = cast(Handler, found)  # kennel.api.errors' handler is a coroutine function

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code != 404 or not _wants_page(request):
            return await api_handler(request, exc)
        try:
            await signed_in(request)  # the navigation, for a signed-in browser
        except SignInRequired:
            pass
        return error_page(404, f"Nothing here: {request.url.path}", request)

    app.add_exception_handler(HTTPException, on_http_error)
