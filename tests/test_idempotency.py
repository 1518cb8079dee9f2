"""`Idempotency-Key` on `POST /api/tasks` and `POST /api/workers`: a request sent again (as the
official SDKs do after 60 s, and on 408/409/429/5xx) does its work once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI

from kennel.agents.offline_model import OfflineModel
from kennel.models import tasks, workers
from tests.factories import Member, count_rows, make_member
from tests.factories.workers import new_worker_id


def keyed(member: Member, key: str) -> dict[str, str]:
    return {**member.headers, "Idempotency-Key": key}


async def post(
    client: httpx.AsyncClient, path: str, member: Member, key: str, **body: Any
) -> httpx.Response:
    return await client.post(path, json=body, headers=keyed(member, key))


class TestTasks:
    async def test_the_same_request_again_is_the_first_turn(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        first = await post(client, "/api/tasks", member, "k-1", input="Once", workerId=worker_id)
        again = await post(client, "/api/tasks", member, "k-1", input="Once", workerId=worker_id)
        assert first.status_code == again.status_code == 200, again.text
        assert again.headers["x-kennel-turn-id"] == first.headers["x-kennel-turn-id"]
        assert again.json()["metadata"]["taskId"] == first.json()["metadata"]["taskId"]
        assert again.json()["output_text"] == first.json()["output_text"]
        assert await count_rows(app, tasks, member.organization_id) == 1

    async def test_another_request_with_the_key_is_409(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        await post(client, "/api/tasks", member, "k-2", input="One", workerId=worker_id)
        other = await post(client, "/api/tasks", member, "k-2", input="Two", workerId=worker_id)
        assert other.status_code == 409, other.text
        assert "Idempotency-Key 'k-2' was used with another request" in other.text
        assert await count_rows(app, tasks, member.organization_id) == 1

    async def test_copies_racing_make_one_task(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        member: Member,
        reconfigure: Callable[..., None],
    ) -> None:
        # Each copy waits for the turn (0.3 s): none is left running into the next test, whose
        # model it would call.
        reconfigure(model=OfflineModel(delay_seconds=0.3))
        worker_id = await new_worker_id(client, member)
        answers = await asyncio.gather(
            *(
                post(client, "/api/tasks", member, "race", input="Race", workerId=worker_id)
                for _ in range(5)
            )
        )
        assert {a.status_code for a in answers} == {200}, [a.text for a in answers]
        assert len({a.headers["x-kennel-turn-id"] for a in answers}) == 1
        assert await count_rows(app, tasks, member.organization_id) == 1

    async def test_a_follow_up_sent_again_while_it_runs_is_not_a_409(
        self, client: httpx.AsyncClient, member: Member, reconfigure: Callable[..., None]
    ) -> None:
        worker_id = await new_worker_id(client, member)
        first = await post(client, "/api/tasks", member, "f-0", input="Start", workerId=worker_id)
        task_id = first.json()["metadata"]["taskId"]
        reconfigure(model=OfflineModel(delay_seconds=1), task_wait_seconds=0)
        body = {"input": "More", "taskId": task_id}
        running = await post(client, "/api/tasks", member, "f-1", **body)
        assert running.json()["running"] is True
        again = await post(client, "/api/tasks", member, "f-1", **body)
        assert again.status_code == 200, again.text
        assert again.headers["x-kennel-turn-id"] == running.headers["x-kennel-turn-id"]
        unkeyed = await client.post("/api/tasks", json=body, headers=member.headers)
        assert unkeyed.status_code == 409  # without a key, a turn in flight is a conflict
        reconfigure(task_wait_seconds=30)
        ended = await post(client, "/api/tasks", member, "f-1", **body)  # waits for its end
        assert ended.json()["running"] is False

    async def test_keys_are_per_organization(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        other = await make_member(app)
        mine = await new_worker_id(client, member)
        theirs = await new_worker_id(client, other)
        a = await post(client, "/api/tasks", member, "shared", input="Hi", workerId=mine)
        b = await post(client, "/api/tasks", other, "shared", input="Hi", workerId=theirs)
        assert a.status_code == b.status_code == 200
        assert a.headers["x-kennel-task-id"] != b.headers["x-kennel-task-id"]

    async def test_a_bad_key_is_400_naming_the_header(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        r = await post(client, "/api/tasks", member, "has space", input="x", workerId=worker_id)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == "Idempotency-Key"


class TestWorkers:
    async def test_the_same_request_again_is_the_first_worker(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        before = await count_rows(app, workers, member.organization_id)
        first = await post(client, "/api/workers", member, "w-1", title="Rex")
        again = await post(client, "/api/workers", member, "w-1", title="Rex")
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json()
        other = await post(client, "/api/workers", member, "w-1", title="Fido")
        assert other.status_code == 409
        assert await count_rows(app, workers, member.organization_id) == before + 1

    async def test_a_prompt_on_a_slow_model_is_not_waited_for(
        self, client: httpx.AsyncClient, member: Member, reconfigure: Callable[..., None]
    ) -> None:
        reconfigure(model=OfflineModel(delay_seconds=5), instructions_wait_seconds=0.5)
        r = await client.post(
            "/api/workers", json={"prompt": "Watch the kennel"}, headers=member.headers
        )
        assert r.status_code == 201, r.text
        assert r.json()["instructions"] == "Watch the kennel"
