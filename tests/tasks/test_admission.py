"""Admission control: past `STARTING_AT_ONCE` tasks being taken in at once, a process answers
429 with Retry-After and writes nothing (issue 27: no collapse under overload)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from kennel.tasks import starting
from tests.factories import Member
from tests.factories.tasks import post_task, tasks_of
from tests.factories.workers import new_worker_id


async def test_a_task_past_the_bound_is_refused_with_retry_after_and_not_written(
    app: FastAPI,
    client: httpx.AsyncClient,
    member: Member,
    reconfigure: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reconfigure(task_wait_seconds=0)
    worker_id = await new_worker_id(client, member)
    monkeypatch.setattr(starting, "STARTING_AT_ONCE", 2)
    release = asyncio.Event()
    entered = 0
    real = starting.start_turn

    async def held(*args: Any, **kwargs: Any) -> Any:
        nonlocal entered
        entered += 1
        await release.wait()
        return await real(*args, **kwargs)

    monkeypatch.setattr(starting, "start_turn", held)
    first = [
        asyncio.create_task(post_task(client, member, workerId=worker_id, input=f"Held {n}"))
        for n in range(2)
    ]
    while entered < 2:
        await asyncio.sleep(0.01)
    refused = await post_task(client, member, workerId=worker_id, input="One too many")
    assert refused.status_code == 429, refused.text
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["type"] == "rate_limit_error"
    release.set()
    assert [(await answer).status_code for answer in first] == [200, 200]
    assert len(await tasks_of(client, member, worker_id)) == 2  # none from the refused one
    # Room again: the next one is taken in.
    again = await post_task(client, member, workerId=worker_id, input="Now there is room")
    assert again.status_code == 200, again.text


def test_the_openapi_document_names_the_429(app: FastAPI) -> None:
    answers = app.openapi()["paths"]["/api/tasks"]["post"]["responses"]
    assert "Retry-After" in answers["429"]["headers"]
