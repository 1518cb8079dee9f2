"""The Tasks API through the real app and DBOS, on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from tests.factories import Member, make_member
from tests.factories.tasks import post_task
from tests.factories.workers import new_worker


class TestCreate:
    async def test_turn_completes_and_fills_the_worker(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker = await new_worker(client, member, instructions="Be brief.")
        r = await post_task(client, member, input="Say hello to Kennel", workerId=worker["id"])
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["object"] == "worker"
        assert body["status"] == "completed"
        assert body["running"] is False
        assert "hello to Kennel" in body["output_text"]
        assert body["output"][0]["content"][0]["text"] == body["output_text"]
        assert body["metadata"]["triggeredBy"] == "api"
        assert body["metadata"]["taskId"]
        assert body["usage"]["credits"] >= 1
        assert body["error"] is None
        roles = [m["role"] for m in body["messages"]]
        assert roles[0] == "user"
        assert "assistant" in roles

    async def test_worker_made_on_the_fly(self, client: httpx.AsyncClient, member: Member) -> None:
        r = await post_task(client, member, input="Count the dogs")
        assert r.status_code == 200, r.text
        worker_id = r.json()["id"]
        template = await client.patch(f"/api/workers/{worker_id}", json={}, headers=member.headers)
        assert template.json()["instructions"] == "Count the dogs"

    async def test_follow_up_turn_sees_history(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker = await new_worker(client, member)
        first = await post_task(
            client,
            member,
            input="First question",
            workerId=worker["id"],
            taskId="conv-1-" + member.user_id,
        )
        task_id = first.json()["metadata"]["taskId"]
        assert task_id == "conv-1-" + member.user_id
        second = await post_task(client, member, input="Second question", taskId=task_id)
        assert second.status_code == 200, second.text
        texts = [
            part.get("text", "")
            for message in second.json()["messages"]
            for part in message["parts"]
        ]
        assert any("First question" in t for t in texts)
        assert any("Second question" in t for t in texts)
        task = (await client.get(f"/api/tasks/{task_id}", headers=member.headers)).json()
        assert [t["seq"] for t in task["turns"]] == [1, 2]
        assert task["task"]["totals"]["turnCount"] == 2
        # The model saw the first turn: its input tokens grew with the history.
        assert task["turns"][1]["inputTokens"] > task["turns"][0]["inputTokens"]

    async def test_bad_input(self, client: httpx.AsyncClient, member: Member) -> None:
        for body, param in [
            ({}, "input"),
            ({"input": ""}, "input"),
            ({"input": "x", "budget": "huge"}, "budget"),
            ({"input": "x", "taskId": "has space"}, "taskId"),
            ({"input": "x", "colour": 1}, "colour"),
        ]:
            r = await client.post("/api/tasks", json=body, headers=member.headers)
            assert r.status_code == 400, (body, r.text)
            assert r.json()["error"]["param"] == param
        r = await post_task(client, member, input="x", workerId="wrk_missing")
        assert r.status_code == 404

    async def test_structured_output(self, client: httpx.AsyncClient, member: Member) -> None:
        schema = {
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 5},
                "count": {"type": "integer", "minimum": 3},
            },
            "required": ["name", "count"],
        }
        worker = await new_worker(client, member, outputSchema=schema)
        r = await post_task(client, member, input="Count things", workerId=worker["id"])
        body = r.json()
        assert body["status"] == "completed", body
        out = body["structured_output"]
        assert isinstance(out["name"], str)
        assert len(out["name"]) <= 5
        assert isinstance(out["count"], int)
        assert out["count"] >= 3


class TestReadAndList:
    async def test_task_turns_and_list(self, client: httpx.AsyncClient, member: Member) -> None:
        worker = await new_worker(client, member)
        ids = []
        for i in range(3):
            r = await post_task(client, member, input=f"job {i}", workerId=worker["id"])
            ids.append(r.json()["metadata"]["taskId"])
        listed = (
            await client.get(f"/api/tasks?workerId={worker['id']}", headers=member.headers)
        ).json()
        assert [t["id"] for t in listed["tasks"]] == ids[::-1]
        assert (listed["page"], listed["pageCount"], listed["totalCount"]) == (1, 1, 3)
        turns = (await client.get(f"/api/tasks/{ids[0]}/turns", headers=member.headers)).json()
        assert turns["taskId"] == ids[0]
        assert turns["items"][0]["status"] == "completed"
        assert turns["items"][0]["outputText"]
        assert turns["items"][0]["durationMs"] >= 0

    async def test_archive(self, app: FastAPI, client: httpx.AsyncClient, member: Member) -> None:
        colleague = await make_member(app, organization=member.organization)
        worker = await new_worker(client, member)
        r = await post_task(client, member, input="archive me", workerId=worker["id"])
        task_id = r.json()["metadata"]["taskId"]
        forbidden = await client.delete(f"/api/tasks/{task_id}", headers=colleague.headers)
        assert forbidden.status_code == 403
        archived = await client.delete(f"/api/tasks/{task_id}", headers=member.headers)
        assert archived.json() == {"archived": True}
        listed = (
            await client.get(f"/api/tasks?workerId={worker['id']}", headers=member.headers)
        ).json()
        assert listed["totalCount"] == 0
        kept = await client.get(f"/api/tasks/{task_id}", headers=member.headers)
        assert kept.status_code == 200
        assert kept.json()["task"]["archived"] is True
        assert len(kept.json()["turns"]) == 1
