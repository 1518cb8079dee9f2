"""Tool calls run in process: visibility, one turn per key across both doors, errors."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import mcp_types as types
import pytest
from fastapi import FastAPI

from kennel.mcp import calls
from tests.factories import Member, make_member


async def new_worker(client: httpx.AsyncClient, member: Member, **fields: Any) -> dict[str, Any]:
    fields.setdefault("title", f"Helper {secrets.token_hex(3)}")
    fields.setdefault("instructions", "Help.")
    r = await client.post("/api/workers", json=fields, headers=member.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def tool_name(app: FastAPI, member: Member, worker_id: str) -> str:
    tools = await calls.list_tools(app.state.runtime, member.caller)
    return next(t.name for t in tools if worker_id in (t.description or ""))


def text(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def test_a_private_worker_is_a_tool_of_its_creator_only(
    app: FastAPI, client: httpx.AsyncClient, member: Member
) -> None:
    colleague = await make_member(app, organization=member.organization)
    private = await new_worker(client, member, visibility="private")
    public = await new_worker(client, member)
    seen = str(await calls.list_tools(app.state.runtime, colleague.caller))
    assert public["id"] in seen
    assert private["id"] not in seen
    result = await calls.call_tool(
        app.state.runtime,
        colleague.caller,
        "run_worker",
        {"workerId": private["id"], "input": "hi"},
    )
    assert result.is_error
    assert text(result) == f"No worker with id {private['id']!r}."


async def test_a_key_names_one_turn_through_the_rest_api_and_mcp(
    app: FastAPI, client: httpx.AsyncClient, member: Member
) -> None:
    worker = await new_worker(client, member)
    key = secrets.token_hex(8)
    r = await client.post(
        "/api/tasks",
        json={"input": "Once only.", "workerId": worker["id"]},
        headers={**member.headers, "Idempotency-Key": key},
    )
    assert r.status_code == 200, r.text
    name = await tool_name(app, member, worker["id"])
    result = await calls.call_tool(
        app.state.runtime, member.caller, name, {"input": "Once only.", "idempotencyKey": key}
    )
    assert not result.is_error, text(result)
    assert result.meta is not None
    assert result.meta["kennel/taskId"] == r.json()["metadata"]["taskId"]
    assert text(result).startswith(r.json()["output_text"])


async def test_a_bug_is_a_tool_error_not_a_broken_session(
    app: FastAPI,
    client: httpx.AsyncClient,
    member: Member,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker = await new_worker(client, member)
    name = await tool_name(app, member, worker["id"])

    async def broken(*args: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(calls, "start_turn", broken)
    result = await calls.call_tool(app.state.runtime, member.caller, name, {"input": "hi"})
    assert result.is_error
    assert text(result) == f"Kennel failed to run {name!r}; the server's log says why."
    assert "a bug" in caplog.text
