"""A turn searches the web through a live server: the start-up block names the search
service, and the results show in the stream, the messages and the sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import fresh_database
from tests.e2e.conftest import start_live_server
from tests.factories.search import serve_search
from tests.tasks.test_streaming import parse_sse

pytestmark = pytest.mark.e2e


def test_a_turn_searches_the_web(tmp_path: Path) -> None:
    with serve_search() as search, fresh_database("sqlite", tmp_path) as database_url:
        env = {"KENNEL_SEARCH_URL": search.url}
        with start_live_server(tmp_path / "server", database_url, extra_env=env) as server:
            block = (tmp_path / "server" / "server.stdout").read_text()
            assert f"web search    SearXNG at {search.url}" in block
            with server.http(server.api_key) as http:
                worker = http.post("/api/workers", json={"title": "Searcher"}).json()
                streamed = http.post(
                    "/api/tasks",
                    json={
                        "input": "Search the web for agility trials.",
                        "workerId": worker["id"],
                        "stream": True,
                    },
                )
                events = parse_sse(streamed)
                state = http.get(f"/api/workers/{worker['id']}").json()
    starts = [e for e in events if isinstance(e, dict) and e["type"] == "tool-input-start"]
    assert [e["toolName"] for e in starts] == ["web_search"]
    assert search.queries == ["agility trials"]
    assert [s["url"] for s in state["sources"]] == [
        "https://gazette.example/agility-trials",
        "https://dogtimes.example/agility-trials",
    ]
    parts = [p for m in state["messages"] for p in m["parts"] if p["type"] == "tool-web_search"]
    assert parts[0]["output"]["results"][0]["title"] == "agility trials - Kennel Gazette"
