"""Who is signed in to the dashboard: the session cookie, its dependency, the CSRF check."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode, urlsplit

from fastapi import Depends, Request
from starlette.responses import Response

from kennel.auth import Caller
from kennel.auth.sessions import (
    LOGIN_TOKEN_SECONDS,
    SESSION_MAX_SECONDS,
    csrf_matches,
    csrf_token,
    login_token,
    login_token_valid,
    server_secret,
    session_caller,
)
from kennel.core.runtime import Runtime, of_request
from kennel.core.settings import Settings

__all__ = [
    "CsrfRefused",
    "SignInRequired",
    "SignedIn",
    "SignedInDep",
    "clear_session_cookie",
    "login_cookie_name",
    "login_token_checks",
    "login_url",
    "new_login_token",
    "require_csrf",
    "require_same_origin",
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
# A sign-in form's own CSRF token (no session exists yet): issued and MACed by the server, and
# double-submitted (in this cookie and in the form). A page on another port of the same host, or
# on a sibling subdomain over http, can set cookies for this host: it could plant a token, but
# not one the server made, and its post carries its own Origin, which is refused. On https
# the cookie takes the `__Host-` prefix, which no other origin can set.
_LOGIN_COOKIE = "kennel_login"
_SECURE_LOGIN_COOKIE = "__Host-kennel_login"
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


def _secure(settings: Settings) -> bool:
    return settings.base_url.startswith("https://")


def session_cookie_name(settings: Settings) -> str:
    return _SECURE_SESSION_COOKIE if _secure(settings) else _SESSION_COOKIE


def login_cookie_name(settings: Settings) -> str:
    return _SECURE_LOGIN_COOKIE if _secure(settings) else _LOGIN_COOKIE


def require_same_origin(request: Request, settings: Settings) -> None:
    """Refuse a form posted from another origin (CsrfRefused)."""
    if not _same_origin(request, settings):
        raise CsrfRefused()


def _same_origin(request: Request, settings: Settings) -> bool:
    """Browsers send `Origin` with every POST of a form; a page on another port of this host
    differs from ours in it even where cookies do not tell the two apart. A client that sends
    no Origin (curl, old browsers) is judged by its tokens alone."""
    origin = request.headers.get("origin")
    if origin is None:
        return request.headers.get("sec-fetch-site") != "cross-site"
    ours = {_origin_of(settings.base_url), _origin_of(str(request.base_url))}
    return origin.rstrip("/").lower() in ours


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{parts.scheme}://{(parts.hostname or '').lower()}{port}"


async def signed_in(request: Request) -> SignedIn:
    """The dependency of every dashboard page: the signed-in user, or a redirect to sign in."""
    rt = of_request(request)
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
    who = SignedIn(caller, session_id)
    request.state.signed_in = who  # an error page keeps the navigation
    return who


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


async def _login_secret(rt: Runtime) -> bytes:
    if not rt.login_secret:
        rt.login_secret = await server_secret(rt.db)
    return rt.login_secret


async def new_login_token(rt: Runtime) -> str:
    return login_token(await _login_secret(rt))


async def login_token_checks(request: Request, rt: Runtime, submitted: str) -> bool:
    """The sign-in form came from this site: same origin, and the token in the form is the
    one in the cookie and one this server issued within the hour."""
    expected = request.cookies.get(login_cookie_name(rt.settings), "")
    if not _same_origin(request, rt.settings) or not expected:
        return False
    if not hmac.compare_digest(expected, submitted):
        return False
    return login_token_valid(await _login_secret(rt), submitted)


def set_login_cookie(response: Response, settings: Settings, token: str) -> None:
    response.set_cookie(
        login_cookie_name(settings),
        token,
        max_age=LOGIN_TOKEN_SECONDS,
        path="/" if _secure(settings) else "/login",  # `__Host-` cookies must have path /
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
        login_cookie_name(settings),
        path="/" if _secure(settings) else "/login",
        httponly=True,
        samesite="lax",
        secure=_secure(settings),
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        session_cookie_name(settings),
        path="/",
        httponly=True,
        samesite="lax",
        secure=_secure(settings),
    )
