"""Browsers signed in to the dashboard, for tests that drive its pages in process."""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI

from tests.factories import Member

__all__ = ["csrf_of", "error_next_to", "panel", "post_form", "sign_in", "signed_in_browser"]

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = _CSRF.search(html)
    assert found, "no form with a CSRF token on this page"
    return found.group(1)


def panel(page: str, name: str) -> str:
    """The HTML of one panel of a worker page (`schedules`, `webhook`, `email`)."""
    assert f'id="panel-{name}"' in page, f"no {name} panel"
    return page.split(f'id="panel-{name}"', 1)[1].split("</section>", 1)[0]


def error_next_to(page: str, field: str) -> str:
    """The error shown under a form field (`_macros.html`'s `<field>-error`), unescaped."""
    found = re.search(rf'id="{re.escape(field)}-error" role="alert">(.*?)</p>', page, re.S)
    assert found, f"no error next to {field}"
    return html.unescape(found.group(1))


async def post_form(
    browser: httpx.AsyncClient, page: str, action: str, data: dict[str, str] | None = None
) -> httpx.Response:
    """Post `data` to `action` with the CSRF token of the form on `page`, as a browser would."""
    found = await browser.get(page)
    assert found.status_code == 200, found.text
    return await browser.post(action, data={**(data or {}), "csrf": csrf_of(found.text)})


async def sign_in(browser: httpx.AsyncClient, key: str, next_path: str = "/") -> httpx.Response:
    """Fill in and post the sign-in form, as a browser would; the answer to the post."""
    form = await browser.get("/login", params={"next": next_path})
    assert form.status_code == 200, form.text
    return await browser.post(
        "/login", data={"api_key": key, "next": next_path, "csrf": csrf_of(form.text)}
    )


@contextlib.asynccontextmanager
async def signed_in_browser(app: FastAPI, member: Member) -> AsyncIterator[httpx.AsyncClient]:
    """A cookie-keeping client signed in as `member`."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kennel.test") as browser:
        answer = await sign_in(browser, member.key)
        assert answer.status_code == 303, answer.text
        yield browser
