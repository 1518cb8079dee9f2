"""Workers made through the API, asserting the status each call expects."""

from __future__ import annotations

import httpx

from tests.factories import Member

__all__ = ["new_worker", "new_worker_id"]


async def new_worker(client: httpx.AsyncClient, member: Member, **body: object) -> dict:
    """POST /api/workers expecting 201: the worker template."""
    r = await client.post("/api/workers", json=body, headers=member.headers)
    assert r.status_code == 201, r.text
    return r.json()


async def new_worker_id(client: httpx.AsyncClient, member: Member, **body: object) -> str:
    return (await new_worker(client, member, **body))["id"]
