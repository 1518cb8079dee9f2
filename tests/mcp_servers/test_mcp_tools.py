"""MCP servers an organization registers, and the turns that use their tools (against a real
MCP server made with the official `mcp` SDK)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from kennel.models import mcp_servers
from tests.factories import Member, make_member
from tests.factories.mcp import DocsServer, serve_docs_mcp
from tests.factories.tasks import post_task
from tests.factories.workers import new_worker
from tests.tasks.test_streaming import parse_sse

_PUBLIC = "https://mcp.example/mcp"


@pytest.fixture
def docs(reconfigure: Callable[..., None]) -> Iterator[DocsServer]:
    reconfigure(allow_private_webhooks=True)  # the test server is on 127.0.0.1
    with serve_docs_mcp() as server:
        yield server


async def register(
    client: httpx.AsyncClient, member: Member, server: DocsServer, name: str = "docs"
) -> httpx.Response:
    body = {
        "name": name,
        "url": server.url,
        "headers": {"Authorization": f"Bearer {server.token}"},
    }
    return await client.post("/api/mcp-servers", json=body, headers=member.headers)


class TestRegistry:
    async def test_registered_listed_and_removed_headers_never_returned(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member, docs: DocsServer
    ) -> None:
        r = await register(client, member, docs)
        assert r.status_code == 201, r.text
        made = r.json()
        assert made["name"] == "docs"
        assert made["url"] == docs.url
        assert made["headerNames"] == ["Authorization"]
        assert docs.token not in r.text
        listed = await client.get("/api/mcp-servers", headers=member.headers)
        assert [s["name"] for s in listed.json()["mcpServers"]] == ["docs"]
        assert docs.token not in listed.text
        # Stored encrypted: the token is nowhere in the row.
        async with app.state.runtime.db.read() as r_:
            rows = await r_.all(select(mcp_servers).where(mcp_servers.c.id == made["id"]))
        assert rows
        assert docs.token not in repr(tuple(rows[0]))
        gone = await client.delete("/api/mcp-servers/docs", headers=member.headers)
        assert gone.status_code == 200
        assert gone.json() == {"mcpServers": []}
        again = await client.delete("/api/mcp-servers/docs", headers=member.headers)
        assert again.status_code == 404

    async def test_another_organization_sees_none(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member, docs: DocsServer
    ) -> None:
        assert (await register(client, member, docs)).status_code == 201
        other = await make_member(app)
        listed = await client.get("/api/mcp-servers", headers=other.headers)
        assert listed.json() == {"mcpServers": []}
        assert (
            await client.delete("/api/mcp-servers/docs", headers=other.headers)
        ).status_code == 404
        # ... and may not name it on a worker of its own.
        r = await client.post(
            "/api/workers", json={"title": "x", "mcpServers": ["docs"]}, headers=other.headers
        )
        assert r.status_code == 400
        assert r.json()["error"]["param"] == "mcpServers"

    async def test_a_name_is_registered_once(
        self, client: httpx.AsyncClient, member: Member, docs: DocsServer
    ) -> None:
        assert (await register(client, member, docs)).status_code == 201
        assert (await register(client, member, docs)).status_code == 409

    @pytest.mark.parametrize(
        ("body", "param"),
        [
            ({"name": "Docs!", "url": "https://mcp.example/mcp"}, "name"),
            ({"name": "docs", "url": "http://169.254.169.254/mcp"}, "url"),
            ({"name": "docs", "url": "ftp://mcp.example/"}, "url"),
            (
                {"name": "docs", "url": "https://mcp.example/", "headers": {"Bad Name": "x"}},
                "headers",
            ),
            ({"name": "docs", "url": "https://mcp.example/", "headers": {"Host": "x"}}, "headers"),
            (
                {"name": "docs", "url": "https://mcp.example/", "headers": {"X-Key": "a\r\nb"}},
                "headers",
            ),
        ],
    )
    async def test_bad_input_is_a_400_naming_the_field(
        self, client: httpx.AsyncClient, member: Member, body: dict, param: str
    ) -> None:
        r = await client.post("/api/mcp-servers", json=body, headers=member.headers)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == param

    async def test_webhook_address_rules_apply(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        """Without KENNEL_ALLOW_PRIVATE_WEBHOOKS, loopback is refused as for a webhook."""
        body = {"name": "local", "url": "http://127.0.0.1:9/mcp"}
        r = await client.post("/api/mcp-servers", json=body, headers=member.headers)
        assert r.status_code == 400
        assert r.json()["error"]["param"] == "url"

    async def test_a_worker_names_only_registered_servers(
        self, client: httpx.AsyncClient, member: Member, docs: DocsServer
    ) -> None:
        r = await client.post(
            "/api/workers", json={"title": "x", "mcpServers": ["docs"]}, headers=member.headers
        )
        assert r.status_code == 400
        assert "docs" in r.json()["error"]["message"]
        assert (await register(client, member, docs)).status_code == 201
        worker = await new_worker(client, member, mcpServers=["docs", "docs"])
        assert worker["mcpServers"] == ["docs"]
        r = await client.patch(
            f"/api/workers/{worker['id']}", json={"mcpServers": []}, headers=member.headers
        )
        assert r.status_code == 200
        assert r.json()["mcpServers"] == []
        r = await client.patch(
            f"/api/workers/{worker['id']}", json={"mcpServers": None}, headers=member.headers
        )
        assert r.status_code == 400
        assert r.json()["error"]["param"] == "mcpServers"


class TestTurns:
    async def test_a_turn_calls_a_tool_seen_in_stream_messages_and_sources(
        self, client: httpx.AsyncClient, member: Member, docs: DocsServer
    ) -> None:
        assert (await register(client, member, docs)).status_code == 201
        worker = await new_worker(client, member, mcpServers=["docs"])
        r = await client.post(
            "/api/tasks",
            json={
                "input": "Use docs__lookup to find what the docs say.",
                "workerId": worker["id"],
                "stream": True,
            },
            headers=member.headers,
        )
        events = [e for e in parse_sse(r) if isinstance(e, dict)]
        starts = [e["toolName"] for e in events if e["type"] == "tool-input-start"]
        assert starts == ["docs__lookup"]
        outputs = [e for e in events if e["type"] == "tool-output-available"]
        assert "well documented" in outputs[0]["output"]["content"]
        assert len(docs.calls) == 1
        assert docs.calls[0]["tool"] == "lookup"
        # The registered header was sent on every request, the token as given.
        assert docs.authorizations
        assert set(docs.authorizations) == {f"Bearer {docs.token}"}
        state = (await client.get(f"/api/workers/{worker['id']}", headers=member.headers)).json()
        parts = [p for m in state["messages"] for p in m["parts"]]
        assert any(p["type"] == "tool-docs__lookup" for p in parts)
        # The web page the tool linked to is a source of the turn.
        assert len(state["sources"]) == 1
        assert state["sources"][0]["url"].startswith("https://docs.example/")

    async def test_a_failing_tool_is_told_to_the_model(
        self, client: httpx.AsyncClient, member: Member, docs: DocsServer
    ) -> None:
        assert (await register(client, member, docs)).status_code == 201
        worker = await new_worker(client, member, mcpServers=["docs"])
        r = await post_task(client, member, input="Call docs__broken now.", workerId=worker["id"])
        assert r.status_code == 200, r.text
        retries = [
            p for m in r.json()["messages"] for p in m["parts"] if p["type"] == "tool-docs__broken"
        ]
        assert retries
        assert all(p["state"] == "output-error" for p in retries)
        assert "Error executing tool broken" in str(retries[0].get("errorText", ""))

    async def test_an_unreachable_server_leaves_a_notice(
        self, client: httpx.AsyncClient, member: Member, docs: DocsServer
    ) -> None:
        assert (await register(client, member, docs)).status_code == 201
        worker = await new_worker(client, member, mcpServers=["docs"])
        docs.token = "rotated"  # the stored header no longer opens the server
        r = await client.post(
            "/api/tasks",
            json={"input": "Use docs__lookup please.", "workerId": worker["id"], "stream": True},
            headers=member.headers,
        )
        events = [e for e in parse_sse(r) if isinstance(e, dict)]
        notices = [e["data"] for e in events if e["type"] == "data-notice"]
        assert [n["code"] for n in notices] == ["mcp_server_unavailable"]
        assert "'docs'" in notices[0]["message"]
        assert not [e for e in events if e["type"] == "tool-input-start"]
        state = (await client.get(f"/api/workers/{worker['id']}", headers=member.headers)).json()
        assert state["error"] is None
        assert [n["code"] for n in state["metadata"]["notices"]] == ["mcp_server_unavailable"]
        # A replayed stream of the finished turn says it too.
        replay = await client.get(
            f"/api/workers/{worker['id']}", params={"stream": "true"}, headers=member.headers
        )
        replayed = [e for e in parse_sse(replay) if isinstance(e, dict)]
        assert [e["data"]["code"] for e in replayed if e["type"] == "data-notice"] == [
            "mcp_server_unavailable"
        ]
