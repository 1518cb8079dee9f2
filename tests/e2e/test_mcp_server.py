"""`/mcp` of a live `kennel serve`, driven by the official MCP client over Streamable HTTP.

The server's offline model pauses before each chunk, and it waits only a few seconds for a turn,
so that a long input makes a turn that outlives the tool call (and sends progress on the way).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import httpx2
import mcp_types as types
import pytest
from mcp.client import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import BACKENDS, fresh_database
from tests.e2e.conftest import LiveServer, start_live_server

pytestmark = pytest.mark.e2e

DELAY_SECONDS = 0.4  # before each chunk the offline model streams
WAIT_SECONDS = 3  # KENNEL_TASK_WAIT_SECONDS: a tool call's patience
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
    "additionalProperties": False,
}
GENERAL = {"list_workers", "run_worker", "get_task", "list_schedules", "create_schedule"}
LONG_INPUT = " ".join(f"word{n}" for n in range(60))  # an answer of ~12 chunks: ~5 s


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp(f"kennel-mcp-{request.param}")
    extra = {
        "KENNEL_OFFLINE_MODEL_DELAY_SECONDS": str(DELAY_SECONDS),
        "KENNEL_TASK_WAIT_SECONDS": str(WAIT_SECONDS),
        "KENNEL_MCP_TOOLS_POLL_SECONDS": "0.3",
    }
    with (
        fresh_database(request.param, workdir) as database_url,
        start_live_server(workdir, database_url, backend=request.param, extra_env=extra) as live,
    ):
        yield live


@contextlib.asynccontextmanager
async def connect(
    server: LiveServer, key: str | None = None, **options: Any
) -> AsyncIterator[ClientSession]:
    """An initialized MCP session with an API key (the bootstrap one by default)."""
    headers = {"Authorization": f"Bearer {key or server.api_key}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http,
        streamable_http_client(f"{server.base_url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write, **options) as session,
    ):
        await session.initialize()
        yield session


def new_worker(server: LiveServer, key: str | None = None, **fields: Any) -> dict[str, Any]:
    fields.setdefault("title", f"Scout {secrets.token_hex(3)}")
    fields.setdefault("instructions", "Answer briefly.")
    with server.http(key or server.api_key) as http:
        r = http.post("/api/workers", json=fields)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def tool_of(session: ClientSession, worker_id: str) -> types.Tool:
    tools = (await session.list_tools()).tools
    found = [t for t in tools if t.description and worker_id in t.description]
    assert len(found) == 1, [t.name for t in tools]
    return found[0]


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


def task_count(server: LiveServer, worker_id: str) -> int:
    with server.http(server.api_key) as http:
        r = http.get("/api/tasks", params={"workerId": worker_id})
    assert r.status_code == 200, r.text
    return int(r.json()["totalCount"])


async def test_initialize_lists_the_workers_of_the_callers_organization(
    server: LiveServer,
) -> None:
    mine = new_worker(server, title="Weather Desk", summary="Forecasts for any city")
    other = server.create_member(org="elsewhere")
    theirs = new_worker(server, other.key, title="Weather Desk")
    async with connect(server) as session:
        init = session.initialize_result
        assert init is not None
        assert init.server_info.name == "kennel"
        assert init.capabilities.tools is not None
        assert init.capabilities.tools.list_changed is True
        tools = (await session.list_tools()).tools
        names = {t.name for t in tools}
        assert names >= GENERAL
        tool = await tool_of(session, mine["id"])
        assert tool.name.startswith("run_weather_desk")
        assert "Forecasts for any city" in (tool.description or "")
        assert tool.input_schema["required"] == ["input"]
        assert set(tool.input_schema["properties"]) == {
            "input",
            "taskId",
            "budget",
            "idempotencyKey",
        }
        assert tool.output_schema is None
        # Another organization's worker does not exist here, by tool or by id.
        assert not any(theirs["id"] in (t.description or "") for t in tools)
        listed = await session.call_tool("list_workers", {})
        assert listed.structured_content is not None
        ids = {w["id"]: w["tool"] for w in listed.structured_content["workers"]}
        assert ids[mine["id"]] == tool.name
        assert theirs["id"] not in ids
        result = await session.call_tool("run_worker", {"workerId": theirs["id"], "input": "hi"})
        assert result.is_error
        assert f"No worker with id {theirs['id']!r}" in text_of(result)


async def test_a_worker_tool_answers_and_continues_its_task(server: LiveServer) -> None:
    worker = new_worker(server)
    async with connect(server) as session:
        tool = await tool_of(session, worker["id"])
        first = await session.call_tool(tool.name, {"input": "Name three rivers."})
        assert not first.is_error, text_of(first)
        assert text_of(first).startswith("Done: Name three rivers.")
        assert first.structured_content is None
        assert first.meta is not None
        task_id = first.meta["kennel/taskId"]
        assert task_id in text_of(first)
        again = await session.call_tool(tool.name, {"input": "And two lakes.", "taskId": task_id})
        assert not again.is_error, text_of(again)
        assert again.meta is not None
        assert again.meta["kennel/taskId"] == task_id
        task = await session.call_tool("get_task", {"taskId": task_id})
        assert not task.is_error, text_of(task)
        assert task.structured_content is not None
        turns = task.structured_content["turns"]
        assert [t["input"] for t in turns] == ["Name three rivers.", "And two lakes."]
        assert turns[1]["outputText"].startswith("Done: And two lakes.")
        assert task.structured_content["task"]["status"] == "completed"
    assert task_count(server, worker["id"]) == 1


async def test_a_worker_with_an_output_schema_answers_with_structured_content(
    server: LiveServer,
) -> None:
    worker = new_worker(server, outputSchema=SCHEMA)
    async with connect(server) as session:
        tool = await tool_of(session, worker["id"])
        assert tool.output_schema == SCHEMA
        # The client checks the object against the tool's output schema itself.
        result = await session.call_tool(tool.name, {"input": "The biggest city of Peru."})
        assert not result.is_error, text_of(result)
        assert isinstance(result.structured_content, dict)
        assert set(result.structured_content) == {"city", "population"}
        assert isinstance(result.structured_content["population"], int)


async def test_a_long_turn_reports_progress_then_answers_with_its_task_id(
    server: LiveServer,
) -> None:
    worker = new_worker(server)
    progress: list[tuple[float, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, message))

    async with connect(server) as session:
        tool = await tool_of(session, worker["id"])
        started = time.monotonic()
        result = await session.call_tool(
            tool.name, {"input": LONG_INPUT}, progress_callback=on_progress
        )
        assert time.monotonic() - started < WAIT_SECONDS + 3
        assert not result.is_error, text_of(result)
        assert result.meta is not None
        task_id = result.meta["kennel/taskId"]
        assert "still working" in text_of(result)
        assert f'get_task {{"taskId": "{task_id}"' in text_of(result)
        # The turn's text as it arrived, in notifications whose progress always increases.
        assert len(progress) >= 2, progress
        assert [v for v, _ in progress] == sorted({v for v, _ in progress})
        assert (progress[0][1] or "").startswith("Done: word0")
        assert len(progress[-1][1] or "") > len(progress[0][1] or "")
        # Running the worker again for it would be refused: the task has a turn in flight.
        retry = await session.call_tool(tool.name, {"input": "again", "taskId": task_id})
        assert retry.is_error
        assert "already running" in text_of(retry)
        for _ in range(5):
            fetched = await session.call_tool(
                "get_task", {"taskId": task_id, "waitSeconds": WAIT_SECONDS}
            )
            assert fetched.structured_content is not None
            if fetched.structured_content["task"]["status"] == "completed":
                break
        else:
            pytest.fail(f"task {task_id} did not complete")
        answer = fetched.structured_content["turns"][0]["outputText"]
        assert answer.startswith("Done: word0 word1")
    assert task_count(server, worker["id"]) == 1


async def test_an_idempotency_key_makes_a_retried_call_the_same_turn(server: LiveServer) -> None:
    worker = new_worker(server)
    key = f"mcp-{secrets.token_hex(8)}"
    async with connect(server) as session:
        tool = await tool_of(session, worker["id"])
        arguments = {"input": "Count to three.", "idempotencyKey": key}
        first = await session.call_tool(tool.name, arguments)
    async with connect(server) as other_session:  # a retry after reconnecting
        second = await other_session.call_tool(tool.name, arguments)
        assert first.meta is not None
        assert second.meta is not None
        assert second.meta == first.meta
        assert text_of(second) == text_of(first)
        misused = await other_session.call_tool(tool.name, {**arguments, "input": "Count to 4."})
        assert misused.is_error
        assert "used with another request" in text_of(misused)
    assert task_count(server, worker["id"]) == 1


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "Field 'input' is required."),
        ({"input": ""}, "input: String should have at least 1 character"),
        ({"input": "hi", "budget": "huge"}, "budget: Input should be"),
        ({"input": "hi", "taskId": "no spaces"}, "taskId: Value error, must be 1-128"),
        ({"input": "hi", "colour": "red"}, "Unknown field 'colour'."),
        ({"input": "x" * 100_001}, "input: String should have at most 100000 characters"),
    ],
)
async def test_bad_input_is_a_tool_error(
    server: LiveServer, arguments: dict[str, Any], message: str
) -> None:
    worker = new_worker(server)
    async with connect(server) as session:
        tool = await tool_of(session, worker["id"])
        result = await session.call_tool(tool.name, arguments)
        assert result.is_error
        assert message in text_of(result)
    assert task_count(server, worker["id"]) == 0


async def test_unknown_tools_and_ids_are_tool_errors(server: LiveServer) -> None:
    async with connect(server) as session:
        unknown = await session.call_tool("run_nobody_at_all", {"input": "hi"})
        assert unknown.is_error
        assert "No tool named 'run_nobody_at_all'" in text_of(unknown)
        task = await session.call_tool("get_task", {"taskId": "tsk_nothing"})
        assert task.is_error
        assert "No task with id 'tsk_nothing'." in text_of(task)
        schedules = await session.call_tool("list_schedules", {"workerId": "wrk_nothing"})
        assert schedules.is_error
        assert "No worker with id 'wrk_nothing'." in text_of(schedules)


async def test_schedules_are_listed_and_created(server: LiveServer) -> None:
    worker = new_worker(server)
    async with connect(server) as session:
        empty = await session.call_tool("list_schedules", {"workerId": worker["id"]})
        assert empty.structured_content == {
            "workerId": worker["id"],
            "timezone": "UTC",
            "schedules": [],
        }
        created = await session.call_tool(
            "create_schedule",
            {
                "workerId": worker["id"],
                "input": "Daily digest",
                "when": {"type": "cron", "cron": "0 7 * * *", "timezone": "Europe/Paris"},
            },
        )
        assert not created.is_error, text_of(created)
        assert created.structured_content is not None
        assert created.structured_content["type"] == "cron"
        bad = await session.call_tool(
            "create_schedule",
            {"workerId": worker["id"], "input": "x", "when": {"type": "cron", "cron": "nope"}},
        )
        assert bad.is_error
        assert "when.cron" in text_of(bad)
        listed = await session.call_tool("list_schedules", {"workerId": worker["id"]})
        assert listed.structured_content is not None
        assert [s["id"] for s in listed.structured_content["schedules"]] == [
            created.structured_content["id"]
        ]


async def test_the_tool_list_changes_as_workers_come_and_go(server: LiveServer) -> None:
    changed = asyncio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with connect(server, message_handler=on_message) as session:
        before = {t.name for t in (await session.list_tools()).tools}
        worker = new_worker(server)
        await asyncio.wait_for(changed.wait(), timeout=10)
        changed.clear()
        tool = await tool_of(session, worker["id"])
        assert tool.name not in before
        with server.http(server.api_key) as http:
            assert http.delete(f"/api/workers/{worker['id']}").status_code == 200
        await asyncio.wait_for(changed.wait(), timeout=10)
        assert tool.name not in {t.name for t in (await session.list_tools()).tools}


def test_mcp_takes_the_api_keys_and_binds_a_session_to_its_key(server: LiveServer) -> None:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"},
        },
    }
    accept = {"Accept": "application/json, text/event-stream"}
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        for auth in ({}, {"Authorization": "Bearer knl_not_a_key_at_all"}):
            r = http.post("/mcp", json=initialize, headers={**accept, **auth})
            assert r.status_code == 401
            assert r.json()["error"]["type"] == "authentication_error"
            assert r.headers["www-authenticate"] == "Bearer"
        mine = {**accept, "Authorization": f"Bearer {server.api_key}"}
        r = http.post("/mcp", json=initialize, headers=mine)
        assert r.status_code == 200, r.text
        session = {"mcp-session-id": r.headers["mcp-session-id"]}
        other = {**accept, **session, "Authorization": f"Bearer {server.create_key()}"}
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        assert http.post("/mcp", json=listing, headers=other).status_code == 404
        assert http.delete("/mcp", headers={**mine, **session}).status_code == 200
