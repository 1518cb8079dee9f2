"""A turn uses an MCP server's tool through a live server: registered over the API with a
secret header, named by a worker, called in the turn, seen in the stream, the messages and
the sources; the secret never in the server's output."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import fresh_database
from tests.e2e.conftest import start_live_server
from tests.factories.mcp import serve_docs_mcp
from tests.tasks.test_streaming import parse_sse

pytestmark = pytest.mark.e2e


def test_a_turn_calls_an_mcp_tool(tmp_path: Path) -> None:
    with serve_docs_mcp() as docs, fresh_database("sqlite", tmp_path) as database_url:
        env = {"KENNEL_ALLOW_PRIVATE_WEBHOOKS": "true"}  # the MCP server is on 127.0.0.1
        with start_live_server(tmp_path / "server", database_url, extra_env=env) as server:
            with server.http(server.api_key) as http:
                registered = http.post(
                    "/api/mcp-servers",
                    json={
                        "name": "docs",
                        "url": docs.url,
                        "headers": {"Authorization": f"Bearer {docs.token}"},
                    },
                )
                assert registered.status_code == 201, registered.text
                worker = http.post(
                    "/api/workers", json={"title": "Librarian", "mcpServers": ["docs"]}
                ).json()
                assert worker["mcpServers"] == ["docs"]
                streamed = http.post(
                    "/api/tasks",
                    json={
                        "input": "Use docs__lookup for the grooming guide.",
                        "workerId": worker["id"],
                        "stream": True,
                    },
                )
                events = parse_sse(streamed)
                state = http.get(f"/api/workers/{worker['id']}").json()
        output = "".join(p.read_text() for p in (tmp_path / "server").glob("server.std*"))
    starts = [e for e in events if isinstance(e, dict) and e["type"] == "tool-input-start"]
    assert [e["toolName"] for e in starts] == ["docs__lookup"]
    assert [c["tool"] for c in docs.calls] == ["lookup"]
    parts = [p for m in state["messages"] for p in m["parts"] if p["type"] == "tool-docs__lookup"]
    assert "well documented" in parts[0]["output"]["content"]
    assert len(state["sources"]) == 1
    assert state["sources"][0]["url"].startswith("https://docs.example/")
    assert state["sources"][0]["title"].endswith("- Team docs")
    assert docs.token not in output
