"""`FastWorkerRead` answers `GET /api/workers/{id}` as the FastAPI route would, byte for byte.

The route itself still answers the same request with any query string (`?stream=false` here),
so each case asks both and compares status, content type and body.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from kennel.workers import fast_read
from tests.factories import Member, make_member
from tests.factories.api import new_worker_id, post_task

SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}}


@pytest.fixture
def fast_calls(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The Authorization headers the fast path authenticated: proof that it answered."""
    calls: list[str | None] = []
    real = fast_read.caller_of

    async def counting(reader: Any, authorization: str | None) -> Any:
        calls.append(authorization)
        return await real(reader, authorization)

    monkeypatch.setattr(fast_read, "caller_of", counting)
    return calls


async def both(
    client: httpx.AsyncClient, path: str, headers: dict[str, str] | None
) -> tuple[httpx.Response, httpx.Response]:
    fast = await client.get(path, headers=headers)
    routed = await client.get(path, params={"stream": "false"}, headers=headers)
    assert fast.status_code == routed.status_code, (fast.text, routed.text)
    assert fast.headers["content-type"] == routed.headers["content-type"]
    assert fast.content == routed.content
    return fast, routed


async def test_an_idle_worker_a_finished_task_and_structured_output(
    client: httpx.AsyncClient, member: Member, fast_calls: list[str | None]
) -> None:
    worker_id = await new_worker_id(client, member, instructions="Be brief.", outputSchema=SCHEMA)
    fast, _ = await both(client, f"/api/workers/{worker_id}", member.headers)
    assert fast.json()["status"] == "pending"

    r = await post_task(
        client, member, workerId=worker_id, input="Write a file named notes.txt please"
    )
    assert r.status_code == 200, r.text
    fast, _ = await both(client, f"/api/workers/{worker_id}", member.headers)
    body = fast.json()
    assert body["status"] == "completed"
    assert body["structured_output"] is not None
    assert body["messages"]
    assert body["files"]  # the workspace listing is compared too
    assert fast_calls == [member.headers["Authorization"]] * 2
    assert fast.headers["x-request-id"]  # the outer middleware still wraps it


async def test_errors_are_the_routes_errors(
    app: FastAPI, client: httpx.AsyncClient, member: Member, fast_calls: list[str | None]
) -> None:
    worker_id = await new_worker_id(client, member, instructions="Mine.", visibility="private")
    stranger = await make_member(app)
    colleague = await make_member(app, organization=member.organization)
    cases = [
        (f"/api/workers/{worker_id}", None, 401),
        (f"/api/workers/{worker_id}", {"Authorization": "Bearer knl_not_a_key_at_all"}, 401),
        (f"/api/workers/{worker_id}", {"Authorization": "Basic abc"}, 401),
        ("/api/workers/wrk_nope", member.headers, 404),
        (f"/api/workers/{worker_id}", stranger.headers, 404),  # another organization
        (f"/api/workers/{worker_id}", colleague.headers, 404),  # private, not invited
    ]
    for path, headers, status in cases:
        fast, _ = await both(client, path, headers)
        assert fast.status_code == status, (path, fast.text)
        assert fast.json()["error"]["message"]
    assert len(fast_calls) == len(cases)


async def test_other_requests_go_on_to_the_routes(
    client: httpx.AsyncClient, member: Member, fast_calls: list[str | None]
) -> None:
    worker_id = await new_worker_id(client, member, instructions="Hi.")
    assert (await client.get(f"/api/workers/{worker_id}/email", headers=member.headers)).is_success
    assert (await client.get("/api/workers", headers=member.headers)).status_code == 405
    r = await client.get(f"/api/workers/{worker_id}?stream=true", headers=member.headers)
    assert r.headers["content-type"].startswith("text/event-stream")
    r = await client.delete(f"/api/workers/{worker_id}", headers=member.headers)
    assert r.status_code == 200, r.text
    assert fast_calls == []


async def test_behind_a_root_path_the_route_path_is_matched(
    app: FastAPI, member: Member, fast_calls: list[str | None]
) -> None:
    """A proxy that mounts Kennel under a prefix passes it as root_path, as uvicorn does."""
    transport = httpx.ASGITransport(app=app, root_path="/kennel")
    async with httpx.AsyncClient(transport=transport, base_url="http://kennel.test") as client:
        r = await client.get("/kennel/api/workers/wrk_nope", headers=member.headers)
    assert r.status_code == 404, r.text
    assert fast_calls == [member.headers["Authorization"]]
