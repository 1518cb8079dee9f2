"""Flash messages, the 404 page, the list filters and the delivery log's headers, in process
(the browser tests in tests/browser/test_dashboard_pages.py drive the same in Chromium)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest_asyncio
from fastapi import FastAPI

from kennel.dashboard.deliveries import sent_request
from kennel.dashboard.filters import TaskSearch, WorkerSearch
from kennel.dashboard.flash import MESSAGES
from kennel.webhooks.repository import ExecutionRow
from tests.factories import Member
from tests.factories.dashboard import csrf_of, signed_in_browser
from tests.factories.workers import new_worker_id


@pytest_asyncio.fixture
async def browser(app: FastAPI, member: Member) -> AsyncIterator[httpx.AsyncClient]:
    async with signed_in_browser(app, member) as signed_in:
        yield signed_in


class TestFlash:
    async def test_a_form_says_what_it_did_on_the_next_page_only(
        self, client: httpx.AsyncClient, member: Member, browser: httpx.AsyncClient
    ) -> None:
        worker_id = await new_worker_id(client, member, title="Flashy")
        page = await browser.get(f"/workers/{worker_id}")
        form = {"csrf": csrf_of(page.text), "senders": "ann@example.com"}
        r = await browser.post(f"/workers/{worker_id}/email/senders", data=form)
        assert r.status_code == 303
        assert "kennel_flash=senders-saved" in r.headers["set-cookie"]
        shown = await browser.get(f"/workers/{worker_id}")
        assert MESSAGES["senders-saved"] in shown.text
        cleared = shown.headers["set-cookie"]
        assert 'kennel_flash=""' in cleared
        assert "Max-Age=0" in cleared
        again = await browser.get(f"/workers/{worker_id}")
        assert 'id="flash"' not in again.text

    async def test_a_cookie_of_another_text_shows_nothing(self, browser: httpx.AsyncClient) -> None:
        browser.cookies.set("kennel_flash", "<b>phished</b>")
        page = await browser.get("/workers")
        assert page.status_code == 200
        assert 'id="flash"' not in page.text
        assert "phished" not in page.text


class TestNotFound:
    async def test_a_browser_gets_the_page_and_a_client_the_json(
        self, browser: httpx.AsyncClient
    ) -> None:
        html = {"Accept": "text/html"}
        page = await browser.get("/no/such/page", headers=html)
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        assert "<h1>Not found</h1>" in page.text
        assert 'href="/workers"' in page.text
        assert "Sign out" in page.text
        plain = await browser.get("/no/such/page")  # no Accept: text/html
        assert plain.status_code == 404
        assert plain.json()["error"]["message"] == "No such route."
        api = await browser.get("/api/no-such", headers=html)
        assert api.json()["error"]["message"] == "No such route."
        posted = await browser.post("/no/such/page", headers=html)
        assert posted.headers["content-type"].startswith("application/json")

    async def test_a_service_404_keeps_the_navigation(self, browser: httpx.AsyncClient) -> None:
        page = await browser.get("/workers/wrk_nope")
        assert page.status_code == 404
        assert "Sign out" in page.text


class TestFilters:
    def test_unknown_values_are_no_filter(self) -> None:
        assert TaskSearch.of("  ducks ", "bogus", "email") == TaskSearch("ducks", None, "email")
        assert WorkerSearch.of("", "secret") == WorkerSearch(None, None)
        assert WorkerSearch.of("x" * 500, None).q == "x" * 200

    def test_the_pager_keeps_the_filters(self) -> None:
        assert TaskSearch.of("a&b", "error", None).query == "&q=a%26b&status=error"
        assert TaskSearch.of(None, None, None).query == ""

    async def test_lists_are_searched_without_wildcards(
        self, client: httpx.AsyncClient, member: Member, browser: httpx.AsyncClient
    ) -> None:
        await new_worker_id(client, member, title="Percent 100% Poodle")
        await new_worker_id(client, member, title="Plain Pug")
        found = await browser.get("/workers", params={"q": "100%"})
        assert "Percent 100% Poodle" in found.text
        assert "Plain Pug" not in found.text
        everything = await browser.get("/workers", params={"q": "%"})
        assert "Plain Pug" not in everything.text  # `%` is a character, not a wildcard


class TestDeliveryHeaders:
    def test_the_token_is_never_shown(self) -> None:
        moment = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
        row = ExecutionRow(
            "exe_1", "msg_1", "wrk_1", 1, "https://example.com/h", "success", 200, None,
            "ok", 12, moment, "tsk_1", "Title",
        )  # fmt: skip
        sent = sent_request(row, '{"a": 1}')
        headers = dict(sent.headers)
        assert headers["webhook-id"] == "msg_1"
        assert headers["X-Handinger-Token"].startswith("whk_••••")
        assert headers["webhook-timestamp"].startswith(f"≈ {int(moment.timestamp())}")
        assert sent.body == '{\n  "a": 1\n}'
        assert not sent.cut
        long = sent_request(row, "x" * 30_000)
        assert long.cut
        assert len(long.body) == 10_000
        assert long.body_size == 30_000


class TestConfirm:
    async def test_delete_worker_asks_then_deletes(
        self, client: httpx.AsyncClient, member: Member, browser: httpx.AsyncClient
    ) -> None:
        worker_id = await new_worker_id(client, member, title="Doomed <Dachshund>")
        page = await browser.get(f"/workers/{worker_id}")
        assert 'data-confirm-subject="Doomed &lt;Dachshund&gt;"' in page.text
        form = {"csrf": csrf_of(page.text)}
        asked = await browser.post(f"/workers/{worker_id}/delete", data=form)
        assert asked.status_code == 200
        assert "Delete this worker?" in asked.text
        assert "Doomed &lt;Dachshund&gt;" in asked.text
        assert f'href="/workers/{worker_id}#template">Keep it</a>' in asked.text
        still = await client.get(f"/api/workers/{worker_id}", headers=member.headers)
        assert still.status_code == 200
        done = await browser.post(f"/workers/{worker_id}/delete", data={**form, "confirmed": "yes"})
        assert (done.status_code, done.headers["location"]) == (303, "/workers")
        gone = await client.get(f"/api/workers/{worker_id}", headers=member.headers)
        assert gone.status_code == 404

    async def test_nothing_is_asked_about_what_the_user_may_not_see(
        self, browser: httpx.AsyncClient
    ) -> None:
        page = await browser.get("/workers")
        form = {"csrf": csrf_of(page.text)}
        for path in ("/workers/wrk_nope/delete", "/workers/wrk_nope/webhook/remove"):
            r = await browser.post(path, data=form)
            assert r.status_code == 404, path
