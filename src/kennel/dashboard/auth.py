"""Who is signed in to the dashboard: the session cookie, its dependency, the CSRF check."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode, urlsplit

from fastapi import Depends, Request
from starlette.responses import Response

from kennel.auth import Caller
from kennel.auth.sessions import SESSION_MAX_SECONDS, csrf_matches, csrf_token, session_caller
from kennel.runtime import Runtime
from kennel.settings import Settings

__all__ = [
    "LOGIN_COOKIE",
    "CsrfRefused",
    "SignInRequired",
    "SignedIn",
    "SignedInDep",
    "clear_session_cookie",
    "login_url",
    "new_login_token",
    "require_csrf",
    "safe_next",
    "session_cookie_name",
    "set_login_cookie",
    "set_session_cookie",
    "signed_in",
]

# On https the cookie takes the `__Host-` prefix: browsers then accept it only when Secure,
# for this host alone and the whole path, so no sibling subdomain can plant or shadow it.
_SESSION_COOKIE = "kennel_session"
_SECURE_SESSION_COOKIE = "__Host-kennel_session"
# A sign-in form's own CSRF token (no session exists yet), double-submitted: in this cookie and
# in the form. SameSite keeps the cookie off cross-site posts, so another site cannot sign a
# browser in to the attacker's account.
LOGIN_COOKIE = "kennel_login"
_LOGIN_COOKIE_SECONDS = 3600
_MAX_NEXT = 2000


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A signed-in browser: the user its session acts as, and the session's CSRF token."""

    caller: Caller
    session_id: str

    @property
    def csrf(self) -> str:
        return csrf_token(self.session_id)


class SignInRequired(Exception):
    """No live session: the browser is sent to the sign-in page, and back to `next_path`."""

    def __init__(self, next_path: str | None) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class CsrfRefused(Exception):
    """A form without the session's CSRF token: refused with 403, nothing changed."""


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]  # set by create_app


def _secure(settings: Settings) -> bool:
    return settings.base_url.startswith("https://")


def session_cookie_name(settings: Settings) -> str:
    return _SECURE_SESSION_COOKIE if _secure(settings) else _SESSION_COOKIE


async def signed_in(request: Request) -> SignedIn:
    """The dependency of every dashboard page: the signed-in user, or a redirect to sign in."""
    rt = _runtime(request)
    session_id = request.cookies.get(session_cookie_name(rt.settings), "")
    caller = None
    if session_id:
        caller = await session_caller(
            rt.db, session_id, idle_seconds=rt.settings.session_idle_seconds
        )
    if caller is None:
        back = None
        if request.method == "GET":
            back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(back)
    request.state.caller_user_id = caller.user_id  # for the access log
    return SignedIn(caller, session_id)


SignedInDep = Annotated[SignedIn, Depends(signed_in)]


def require_csrf(who: SignedIn, submitted: object) -> None:
    if not isinstance(submitted, str) or not csrf_matches(who.session_id, submitted):
        raise CsrfRefused()


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path of this site, never another site's address."""
    if not value or len(value) > _MAX_NEXT or not value.startswith("/"):
        return "/"
    # `//host` and `/\host` are other hosts to a browser; control characters are never ours.
    if value.startswith("//") or "\\" in value or any(ord(c) < 0x20 or c == "\x7f" for c in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path.startswith("/login"):
        return "/"
    return value


def login_url(next_path: str | None) -> str:
    target = safe_next(next_path)
    return "/login" if target == "/" else "/login?" + urlencode({"next": target})


def new_login_token() -> str:
    return secrets.token_urlsafe(32)


def set_login_cookie(response: Response, settings: Settings, token: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=_LOGIN_COOKIE_SECONDS,
        path="/login",
        httponly=True,
        samesite="lax",
        secure=_secure(settings),
    )


def set_session_cookie(response: Response, settings: Settings, session_id: str) -> None:
    response.set_cookie(
        session_cookie_name(settings),
        session_id,
        max_age=SESSION_MAX_SECONDS,
        path="/",
        httponly=True,
        samesite="lax",
        secure=_secure(settings),
    )
    response.delete_cookie(
        LOGIN_COOKIE, path="/login", httponly=True, samesite="lax", secure=_secure(settings)
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        session_cookie_name(settings),
        path="/",
        httponly=True,
        samesite="lax",
        secure=_secure(settings),
    )
