"""The worker page's Webhook panel in process: the URL form, the token shown on request,
regenerate, remove, and the delivery log with Redeliver, against a real receiver."""

from __future__ import annotations

import asyncio
import html
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
import pytest_asyncio
import sqlalchemy as sa
from fastapi import FastAPI

from kennel.dashboard import panels_webhook
from kennel.models import webhook_executions
from kennel.webhooks.workflows import UNKNOWN_MESSAGE
from tests.factories import Member
from tests.factories.dashboard import error_next_to, panel, post_form, signed_in_browser
from tests.factories.receiver import Answer, Receiver
from tests.factories.tasks import post_task
from tests.factories.workers import new_worker_id


@pytest_asyncio.fixture
async def browser(app: FastAPI, member: Member) -> AsyncIterator[httpx.AsyncClient]:
    async with signed_in_browser(app, member) as signed_in:
        yield signed_in


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def private_webhooks(reconfigure: Callable[..., None]) -> None:
    reconfigure(allow_private_webhooks=True)


def fresh_path() -> str:
    return f"/hook-{secrets.token_hex(4)}"  # the receiver outlives the backends' runs


async def hook_of(client: httpx.AsyncClient, member: Member, worker_id: str) -> dict:
    r = await client.get(f"/api/workers/{worker_id}/webhook", headers=member.headers)
    assert r.status_code == 200, r.text
    return r.json()


async def set_url(browser: httpx.AsyncClient, worker_id: str, url: str) -> httpx.Response:
    page = f"/workers/{worker_id}"
    return await post_form(browser, page, f"/workers/{worker_id}/webhook", {"url": url})


async def logged(
    client: httpx.AsyncClient, member: Member, worker_id: str, count: int
) -> list[dict]:
    deadline = time.monotonic() + 20
    while True:
        r = await client.get(f"/api/workers/{worker_id}/webhook/executions", headers=member.headers)
        if len(found := r.json()["logs"]) >= count:
            return found
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.05)


class TestPanel:
    async def test_without_a_webhook(
        self, client: httpx.AsyncClient, member: Member, browser: httpx.AsyncClient
    ) -> None:
        worker_id = await new_worker_id(client, member)
        shown = panel((await browser.get(f"/workers/{worker_id}")).text, "webhook")
        assert "Set webhook" in shown
        assert "Nothing delivered yet." in shown
        assert "webhook-token" not in shown
        assert "Remove webhook" not in shown

    async def test_set_show_regenerate_and_remove(
        self,
        client: httpx.AsyncClient,
        member: Member,
        browser: httpx.AsyncClient,
        private_webhooks: None,
        receiver: Receiver,
    ) -> None:
        worker_id = await new_worker_id(client, member)
        url = receiver.url(fresh_path())
        r = await set_url(browser, worker_id, url)
        assert r.status_code == 303, r.text
        assert r.headers["location"] == f"/workers/{worker_id}#panel-webhook"
        hook = await hook_of(client, member, worker_id)
        assert hook["url"] == url
        shown = panel((await browser.get(f"/workers/{worker_id}")).text, "webhook")
        assert f'value="{url}"' in shown
        # The token only inside a closed <details>, with a Copy button for the script.
        box = shown.split('<details class="secret" id="webhook-token-box">', 1)[1]
        box = box.split("</details>", 1)[0]
        assert f'<code class="copyable" id="webhook-token">{hook["token"]}</code>' in box
        assert 'data-copy="webhook-token"' in box
        assert shown.count(hook["token"]) == 1

        page = f"/workers/{worker_id}"
        r = await post_form(browser, page, f"/workers/{worker_id}/webhook/token")
        assert r.status_code == 200  # asked first
        assert "Make a new token?" in r.text
        assert (await hook_of(client, member, worker_id))["token"] == hook["token"]
        yes = {"confirmed": "yes"}
        r = await post_form(browser, page, f"/workers/{worker_id}/webhook/token", yes)
        assert r.status_code == 303, r.text
        rotated = await hook_of(client, member, worker_id)
        assert rotated["url"] == url
        assert rotated["token"] != hook["token"]
        shown = panel((await browser.get(page)).text, "webhook")
        assert rotated["token"] in shown
        assert hook["token"] not in shown
        assert "The previous token also signs deliveries until" in shown

        r = await post_form(browser, page, f"/workers/{worker_id}/webhook/remove")
        assert "Remove the webhook?" in r.text
        assert (await hook_of(client, member, worker_id))["url"] == url
        r = await post_form(browser, page, f"/workers/{worker_id}/webhook/remove", yes)
        assert r.status_code == 303, r.text
        assert await hook_of(client, member, worker_id) == {"url": None, "token": None}
        assert "Set webhook" in panel((await browser.get(page)).text, "webhook")
        # Nothing to rotate any more: the API's 404, as a page.
        r = await post_form(browser, page, f"/workers/{worker_id}/webhook/token")
        assert r.status_code == 404

    @pytest.mark.parametrize(
        ("url", "says"),
        [
            ("http://example.com/hooks", "must use https"),
            ("https://127.0.0.1/hooks", "loopback"),
            ("hooks.example.com", "absolute"),
            ("", "required"),
            ("https://example.com/" + "a" * 2100, "2048"),
        ],
    )
    async def test_a_refused_url_says_why_next_to_it(
        self,
        client: httpx.AsyncClient,
        member: Member,
        browser: httpx.AsyncClient,
        url: str,
        says: str,
    ) -> None:
        worker_id = await new_worker_id(client, member)
        r = await set_url(browser, worker_id, url)
        assert r.status_code == 400, r.text
        assert says in error_next_to(r.text, "url")
        assert f'value="{html.escape(url)}"' in panel(r.text, "webhook")  # kept as typed
        assert await hook_of(client, member, worker_id) == {"url": None, "token": None}


class TestLog:
    async def test_deliveries_and_redeliver(
        self,
        client: httpx.AsyncClient,
        member: Member,
        browser: httpx.AsyncClient,
        private_webhooks: None,
        receiver: Receiver,
    ) -> None:
        worker_id = await new_worker_id(client, member)
        path = fresh_path()
        receiver.script(path, [201])
        assert (await set_url(browser, worker_id, receiver.url(path))).status_code == 303
        r = await post_task(client, member, input="Ring the bell", workerId=worker_id)
        assert r.status_code == 200, r.text
        (first,) = await logged(client, member, worker_id, 1)
        page = f"/workers/{worker_id}"
        shown = panel((await browser.get(page)).text, "webhook")
        row = shown.split(f'id="execution-{first["id"]}"', 1)[1].split("</tr>", 1)[0]
        assert "success" in row
        assert '<td class="num">201</td>' in row
        assert '<td class="num">1</td>' in row  # the attempt
        assert f'href="/tasks/{first["taskId"]}"' in row
        assert "Ring the bell" in row  # the task's title
        redeliver = f"/workers/{worker_id}/webhook/executions/{first['id']}/redeliver"
        assert f'action="{redeliver}"' in row

        r = await post_form(browser, page, redeliver)
        assert r.status_code == 303, r.text
        assert r.headers["location"] == f"/workers/{worker_id}#panel-webhook"
        again, _ = await logged(client, member, worker_id, 2)
        assert (again["attempt"], again["eventId"]) == (2, first["eventId"])
        shown = panel((await browser.get(page)).text, "webhook")
        assert f'id="execution-{again["id"]}"' in shown
        await asyncio.to_thread(receiver.wait_for, 2, 20.0, path)
        missing = await post_form(
            browser, page, f"/workers/{worker_id}/webhook/executions/whx_nope/redeliver"
        )
        assert missing.status_code == 404

    async def test_older_attempts_link_to_a_page_of_their_own(
        self,
        client: httpx.AsyncClient,
        member: Member,
        browser: httpx.AsyncClient,
        private_webhooks: None,
        receiver: Receiver,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr(panels_webhook, "DETAILS_INLINE", 1)
        worker_id = await new_worker_id(client, member)
        path = fresh_path()
        receiver.script(path, [200, 200])
        assert (await set_url(browser, worker_id, receiver.url(path))).status_code == 303
        r = await post_task(client, member, input="Ring the bell", workerId=worker_id)
        assert r.status_code == 200, r.text
        (first,) = await logged(client, member, worker_id, 1)
        page = f"/workers/{worker_id}"
        redeliver = f"/workers/{worker_id}/webhook/executions/{first['id']}/redeliver"
        assert (await post_form(browser, page, redeliver)).status_code == 303
        newest, older = await logged(client, member, worker_id, 2)
        shown = panel((await browser.get(page)).text, "webhook")
        assert f'id="execution-{newest["id"]}-detail"' in shown  # inline, the newest only
        assert f'id="execution-{older["id"]}-detail"' not in shown
        link = f"/workers/{worker_id}/webhook/executions/{older['id']}"
        assert f'<a href="{link}">Request and response</a>' in shown
        detail = await browser.get(link)
        assert detail.status_code == 200
        assert f"webhook-id: {older['eventId']}" in detail.text
        assert "X-Handinger-Token: whk_••••" in detail.text
        token = (await hook_of(client, member, worker_id))["token"]
        assert token not in detail.text
        assert '<pre class="code request-body">' in detail.text
        assert (
            await browser.get(f"/workers/{worker_id}/webhook/executions/whx_no")
        ).status_code == 404

    async def test_an_attempt_shows_while_it_is_sent_and_when_it_was_cut_off(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        member: Member,
        browser: httpx.AsyncClient,
        private_webhooks: None,
        receiver: Receiver,
    ) -> None:
        worker_id = await new_worker_id(client, member)
        path = fresh_path()
        receiver.script(path, [Answer(200, delay=1.5)])
        assert (await set_url(browser, worker_id, receiver.url(path))).status_code == 303
        await post_task(client, member, input="Slowly", workerId=worker_id)
        await asyncio.to_thread(receiver.wait_for, 1, 20.0, path)
        page = f"/workers/{worker_id}"
        shown = panel((await browser.get(page)).text, "webhook")
        assert '<span class="status status-running">sending</span>' in shown
        (done,) = await logged(client, member, worker_id, 1)
        # As a crash would have left it (the rendering only: see tests/webhooks).
        async with app.state.runtime.db.write() as w:
            await w.execute(
                sa.update(webhook_executions)
                .where(webhook_executions.c.id == done["id"])
                .values(request_status="unknown", error_message=UNKNOWN_MESSAGE)
            )
        shown = panel((await browser.get(page)).text, "webhook")
        row = shown.split(f'id="execution-{done["id"]}"', 1)[1].split("</tr>", 1)[0]
        assert ">unknown</span>" in row
        assert html.escape(UNKNOWN_MESSAGE) in row
