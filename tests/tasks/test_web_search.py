"""The agent's `web_search` tool: offered only with a search service, its results the turn's
sources (against a local server speaking SearXNG's JSON format)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from pydantic import ValidationError

from kennel.core.settings import Settings
from tests.factories import Member
from tests.factories.search import serve_search
from tests.factories.tasks import post_task
from tests.factories.workers import new_worker_id
from tests.tasks.test_streaming import kinds, parse_sse


def search_parts(state: dict) -> list[dict]:
    """The `web_search` calls in a `Worker` object's UI messages."""
    return [
        p for m in state["messages"] for p in m.get("parts", [])
        if p.get("type") == "tool-web_search"
    ]  # fmt: skip


class TestWebSearch:
    async def test_not_offered_without_a_search_service(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        r = await post_task(client, member, input="Search the web for kennels", workerId=worker_id)
        assert r.status_code == 200, r.text
        assert search_parts(r.json()) == []
        assert r.json()["sources"] == []

    async def test_results_become_sources_and_show_in_the_stream(
        self, client: httpx.AsyncClient, member: Member, reconfigure: Callable[..., None]
    ) -> None:
        with serve_search() as search:
            reconfigure(search_url=search.url)
            worker_id = await new_worker_id(client, member)
            r = await client.post(
                "/api/tasks",
                json={
                    "input": "Search the web for dog shows. Then answer.",
                    "workerId": worker_id,
                    "stream": True,
                },
                headers=member.headers,
            )
        events = parse_sse(r)
        tool_starts = [e for e in events if isinstance(e, dict) and e["type"] == "tool-input-start"]
        assert [e["toolName"] for e in tool_starts] == ["web_search"]
        assert "tool-output-available" in kinds(events)
        assert search.queries == ["dog shows"]
        state = (await client.get(f"/api/workers/{worker_id}", headers=member.headers)).json()
        assert [s["url"] for s in state["sources"]] == [
            "https://gazette.example/dog-shows",
            "https://dogtimes.example/dog-shows",
        ]
        assert state["sources"][0]["title"] == "dog shows - Kennel Gazette"
        (part,) = search_parts(state)
        assert part["state"] == "output-available"
        assert part["input"] == {"query": "dog shows"}
        assert len(part["output"]["results"]) == 2  # the javascript: one dropped

    async def test_a_failing_search_service_is_told_to_the_model(
        self, client: httpx.AsyncClient, member: Member, reconfigure: Callable[..., None]
    ) -> None:
        reconfigure(search_url="http://127.0.0.1:9")  # nothing listens there
        worker_id = await new_worker_id(client, member)
        r = await post_task(client, member, input="Search the web for bones", workerId=worker_id)
        assert r.status_code == 200, r.text
        parts = search_parts(r.json())
        assert parts
        assert "the search service failed" in str(parts[0])


class TestSetting:
    def test_the_search_url_must_be_http(self) -> None:
        with pytest.raises(ValidationError, match="must start with http"):
            Settings(search_url="searx.internal:8888")
        assert Settings(search_url="http://searx.internal:8888/").search_url == (
            "http://searx.internal:8888"
        )
