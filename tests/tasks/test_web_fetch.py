"""The web_fetch tool against a page served on 127.0.0.1: refused by default, read when allowed."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.factories import Member
from tests.factories.pages import PAGE_TITLE, serve_page


async def run(client: httpx.AsyncClient, member: Member, text: str) -> dict:
    r = await client.post("/api/tasks", json={"input": text}, headers=member.headers)
    assert r.status_code == 200, r.text
    return r.json()


def web_fetch_parts(worker: dict) -> list[dict]:
    return [
        part
        for message in worker["messages"]
        for part in message["parts"]
        if part["type"] == "tool-web_fetch"
    ]


class TestPrivateAddresses:
    async def test_refused_by_default(self, client: httpx.AsyncClient, member: Member) -> None:
        with serve_page() as page:
            worker = await run(client, member, f"Summarise {page.url} for me")
        assert page.requests == []  # never connected
        assert worker["status"] == "completed"
        assert worker["error"] is None
        assert worker["sources"] == []
        # The tool call failed with the refusal, and the answer reports it.
        (call,) = web_fetch_parts(worker)
        assert call["input"] == {"url": page.url}
        assert call["state"] == "output-error"
        assert "private" in call["errorText"].lower()
        assert "127.0.0.1" in call["errorText"]
        assert "web_fetch (retried)" in worker["output_text"]
        assert "private" in worker["output_text"].lower()
        assert PAGE_TITLE not in worker["output_text"]

    async def test_read_when_allowed(
        self, client: httpx.AsyncClient, member: Member, reconfigure: Callable[..., None]
    ) -> None:
        reconfigure(allow_private_fetch=True)
        with serve_page() as page:
            worker = await run(client, member, f"Summarise {page.url} for me")
        assert page.requests == ["/page.html"]
        assert worker["status"] == "completed"
        assert worker["error"] is None
        (source,) = worker["sources"]
        assert source["type"] == "url"
        assert source["url"] == page.url
        assert source["title"] == PAGE_TITLE
        assert source["id"].startswith("src_")
        assert f"web_fetch: {PAGE_TITLE}" in worker["output_text"]
        (call,) = web_fetch_parts(worker)
        assert call["state"] == "output-available"
        assert call["output"]["title"] == PAGE_TITLE
        assert "Beagles are patient." in call["output"]["content"]
        # The same sources on a later read of the worker.
        again = await client.get(f"/api/workers/{worker['id']}", headers=member.headers)
        assert again.json()["sources"] == worker["sources"]
