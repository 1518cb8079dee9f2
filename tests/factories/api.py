"""Calls to the Kennel API that many tests make, asserting the status they expect."""

from __future__ import annotations

import httpx

from tests.factories import Member

__all__ = ["new_worker", "new_worker_id", "post_task"]


async def new_worker(client: httpx.AsyncClient, member: Member, **body: object) -> dict:
    """POST /api/workers expecting 201: the worker template."""
    r = await client.post("/api/workers", json=body, headers=member.headers)
    assert r.status_code == 201, r.text
    return r.json()


async def new_worker_id(client: httpx.AsyncClient, member: Member, **body: object) -> str:
    return (await new_worker(client, member, **body))["id"]


async def post_task(client: httpx.AsyncClient, member: Member, **body: object) -> httpx.Response:
    """POST /api/tasks as JSON, whatever the answer."""
    return await client.post("/api/tasks", json=body, headers=member.headers)
