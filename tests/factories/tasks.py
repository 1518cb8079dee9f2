"""Tasks started and read through the API."""

from __future__ import annotations

import httpx

from tests.factories import Member

__all__ = ["post_task", "tasks_of"]


async def post_task(client: httpx.AsyncClient, member: Member, **body: object) -> httpx.Response:
    """POST /api/tasks as JSON, whatever the answer."""
    return await client.post("/api/tasks", json=body, headers=member.headers)


async def tasks_of(client: httpx.AsyncClient, member: Member, worker_id: str) -> list[dict]:
    """GET /api/tasks?workerId= expecting 200: the worker's tasks (the first page)."""
    r = await client.get("/api/tasks", params={"workerId": worker_id}, headers=member.headers)
    assert r.status_code == 200, r.text
    return list(r.json()["tasks"])
