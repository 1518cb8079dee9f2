"""The worker page's E-mail panel in process: the address and the editable allow-list."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator

import httpx
import pytest_asyncio
from fastapi import FastAPI

from tests.factories import Member
from tests.factories.dashboard import error_next_to, panel, post_form, signed_in_browser
from tests.factories.workers import new_worker


@pytest_asyncio.fixture
async def browser(app: FastAPI, member: Member) -> AsyncIterator[httpx.AsyncClient]:
    async with signed_in_browser(app, member) as signed_in:
        yield signed_in


async def senders_of(client: httpx.AsyncClient, member: Member, worker_id: str) -> list[str]:
    r = await client.get(f"/api/workers/{worker_id}/email/allowed-senders", headers=member.headers)
    assert r.status_code == 200, r.text
    return r.json()["senders"]


async def save(browser: httpx.AsyncClient, worker_id: str, senders: str) -> httpx.Response:
    return await post_form(
        browser,
        f"/workers/{worker_id}",
        f"/workers/{worker_id}/email/senders",
        {"senders": senders},
    )


async def test_shows_the_address_copyable_and_the_allow_list(
    client: httpx.AsyncClient, member: Member, browser: httpx.AsyncClient
) -> None:
    worker = await new_worker(client, member, title="Mail Beagle")
    r = await client.put(
        f"/api/workers/{worker['id']}/email/allowed-senders",
        json={"senders": ["ann@example.com", "@example.org"]},
        headers=member.headers,
    )
    assert r.status_code == 200, r.text
    shown = panel((await browser.get(f"/workers/{worker['id']}")).text, "email")
    assert f'<code class="copyable" id="worker-email">{worker["email"]}</code>' in shown
    assert 'data-copy="worker-email"' in shown
    assert ">@example.org\nann@example.com</textarea>" in shown


async def test_the_form_replaces_the_allow_list(
    client: httpx.AsyncClient, member: Member, browser: httpx.AsyncClient
) -> None:
    worker_id = (await new_worker(client, member))["id"]
    # As a browser sends a text area: CRLF line ends, and blank lines left in.
    r = await save(browser, worker_id, " Ann@Example.com \r\n\r\n@example.org\r\n")
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"/workers/{worker_id}#panel-email"
    assert await senders_of(client, member, worker_id) == ["@example.org", "ann@example.com"]
    assert (await save(browser, worker_id, "")).status_code == 303
    assert await senders_of(client, member, worker_id) == []


async def test_a_bad_sender_says_why_next_to_the_field(
    client: httpx.AsyncClient, member: Member, browser: httpx.AsyncClient
) -> None:
    worker_id = (await new_worker(client, member))["id"]
    typed = "ann@example.com\nnot an address"
    r = await save(browser, worker_id, typed)
    assert r.status_code == 400, r.text
    assert "'not an address' is neither an address" in error_next_to(r.text, "senders")
    assert f">{html.escape(typed)}</textarea>" in panel(r.text, "email")  # kept as typed
    assert await senders_of(client, member, worker_id) == []
