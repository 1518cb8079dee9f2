"""Flash messages: one line of feedback on the page a form's redirect lands on.

The cookie holds only a key of `MESSAGES`, never text: whatever a cookie planted by another
page says, the page shows one of these fixed lines or nothing, so there is nothing to inject
and nothing to sign. It lives for one page view (or a minute, if that view never comes).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from fastapi import Request
from starlette.responses import RedirectResponse, Response

__all__ = ["MESSAGES", "current_flash", "flash_of", "flash_redirect", "forget_flash"]

_COOKIE = "kennel_flash"
MESSAGES = {
    "worker-created": "Worker created.",
    "worker-deleted": "Worker deleted; its schedules are cancelled and its webhook removed.",
    "template-saved": "Template saved.",
    "task-started": "Task started: its turn shows below as it runs.",
    "task-archived": "Task archived.",
    "schedule-created": "Schedule created.",
    "schedule-paused": "Schedule paused.",
    "schedule-resumed": "Schedule resumed.",
    "schedule-run": "Schedule fired now: its task has started.",
    "schedule-cancelled": "Schedule cancelled. It stays under Past schedules with its runs.",
    "webhook-saved": "Webhook saved.",
    "webhook-removed": "Webhook removed; retries of earlier events stop.",
    "token-regenerated": "New token made; the old one also signs deliveries for a while.",
    "redelivered": "Delivered again: the new attempt is at the top of the log.",
    "senders-saved": "Allowed senders saved.",
}
_current: ContextVar[str | None] = ContextVar("kennel_flash", default=None)


def flash_redirect(path: str, key: str) -> RedirectResponse:
    """303 to `path` (a reload does not post again), saying `MESSAGES[key]` there."""
    assert key in MESSAGES, key
    response = RedirectResponse(path, status_code=303)
    # Not Secure and not `__Host-`: it carries no secret, only which fixed line to show.
    response.set_cookie(_COOKIE, key, max_age=60, path="/", httponly=True, samesite="lax")
    return response


@contextmanager
def flash_of(request: Request) -> Iterator[bool]:
    """Within: the cookie's message is the one this request's page shows. Yields whether the
    request carried one. The message is reset after, so it never outlives its request (an
    in-process client runs every request in one context)."""
    key = request.cookies.get(_COOKIE)
    token = _current.set(MESSAGES.get(key) if key else None)
    try:
        yield key is not None
    finally:
        _current.reset(token)


def forget_flash(response: Response) -> None:
    """Shown once: the page that showed it clears the cookie."""
    response.delete_cookie(_COOKIE, path="/", httponly=True, samesite="lax")


def current_flash() -> str | None:
    return _current.get()
