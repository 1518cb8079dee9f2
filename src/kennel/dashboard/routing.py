"""The dashboard's route class and the small things every page handler needs."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import RedirectResponse, Response

from kennel.api.errors import ApiError
from kennel.dashboard.auth import CsrfRefused, SignInRequired, login_url
from kennel.dashboard.confirm import ConfirmFirst
from kennel.dashboard.flash import flash_of, forget_flash
from kennel.dashboard.templating import render

__all__ = ["DashboardRoute", "error_page", "page_number", "redirect"]

_TITLES = {
    400: "That did not work",
    403: "Not allowed",
    404: "Not found",
    409: "Not now",
    413: "Too large",
    502: "The model provider failed",
}


class DashboardRoute(APIRoute):
    """FastAPI's route, answering like a web page: a browser that is not signed in is sent to
    the sign-in page, a refused form or an `ApiError` of a service is an HTML page with the
    error's status (the same 404 as the API for what the user may not see)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            with flash_of(request) as flashed:
                response = await self._answer(handler, request)
            if flashed and response.media_type == "text/html":
                forget_flash(response)  # shown on this page, or on the error page
            return response

        return answer

    @staticmethod
    async def _answer(
        handler: Callable[[Request], Coroutine[Any, Any, Response]], request: Request
    ) -> Response:
        try:
            return await handler(request)
        except SignInRequired as exc:
            return RedirectResponse(login_url(exc.next_path), status_code=303)
        except CsrfRefused:
            message = (
                "This form did not carry this sign-in's security token, so nothing was "
                "changed. Reload the page and try again."
            )
            return error_page(403, message, request)
        except ApiError as exc:
            return error_page(exc.status, exc.message, request)
        except ConfirmFirst as ask:
            return _confirm_page(ask, request)


def _confirm_page(ask: ConfirmFirst, request: Request) -> Response:
    who = request.state.signed_in  # a form was read: the browser is signed in
    context = {
        "question": ask.question,
        "action": ask.action,
        "back": ask.back,
        "subject": ask.subject,
        "signed_in": who,
        "csrf": who.csrf,
    }
    return render("confirm.html", context)


def error_page(status: int, message: str, request: Request | None = None) -> Response:
    """The error inside the site's layout; with the navigation when the browser is signed in."""
    title = _TITLES.get(status, "Something went wrong")
    who = getattr(request.state, "signed_in", None) if request is not None else None
    context = {"title": title, "message": message, "signed_in": who}
    if who is not None:
        context["csrf"] = who.csrf
    return render("error.html", context, status_code=status)


def redirect(path: str) -> RedirectResponse:
    """After a form: 303, so the browser GETs the page (a reload does not post again)."""
    return RedirectResponse(path, status_code=303)


def page_number(raw: str | None) -> int:
    """`?page=`, forgiving: anything but a whole number from 1 is the first page."""
    if raw and raw.isdigit() and 0 < int(raw) <= 100_000:
        return int(raw)
    return 1
