"""A request's writes are committed before its response leaves, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import httpx
from fastapi import FastAPI

from kennel.models import Worker
from tests.factories import Member


async def test_created_worker_is_committed_before_the_response_is_sent(
    app: FastAPI, member: Member
) -> None:
    seen: list[bool] = []

    async def looking_app(scope: Any, receive: Any, send: Any) -> None:
        async def send_after_looking(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                worker_id = json.loads(message["body"])["id"]
                # Another session, as another request would have: the row must already be there.
                async with app.state.db.session(write=False) as other:
                    seen.append(await other.get(Worker, worker_id) is not None)
            await send(message)

        await app(scope, receive, send_after_looking)

    transport = httpx.ASGITransport(app=looking_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kennel.test") as client:
        r = await client.post("/api/workers", json={"title": "Rex"}, headers=member.headers)
    assert r.status_code == 201, r.text
    assert seen == [True]
