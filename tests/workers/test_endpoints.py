"""The Workers API through the real app, on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from tests.factories import Member, make_member
from tests.factories.tasks import post_task
from tests.factories.workers import new_worker_id


async def create(client: httpx.AsyncClient, member: Member, **body: object) -> httpx.Response:
    return await client.post("/api/workers", json=body, headers=member.headers)


def assert_error(response: httpx.Response, status: int, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"type", "message", "param"}
    assert error["message"]
    if param is not None:
        assert error["param"] == param
    return error


class TestCreate:
    async def test_defaults(self, client: httpx.AsyncClient, member: Member) -> None:
        r = await create(client, member)
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["id"].startswith("wrk_")
        adjective, breed = body["title"].split(" ")
        assert adjective.istitle()
        assert breed.istitle()
        assert body["visibility"] == "public"
        assert body["instructions"] == ""
        assert body["outputSchema"] is None
        assert body["organizationId"] == member.organization_id
        assert body["userId"] == member.user_id
        assert body["url"] == f"http://kennel.test/workers/{body['id']}"
        assert body["createdAt"].endswith("Z")
        assert body["updatedAt"].endswith("Z")
        assert body["instructionsVersion"] == 1

    async def test_all_fields(self, client: httpx.AsyncClient, member: Member) -> None:
        schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
        r = await create(
            client, member, title="Scout", instructions="Count.", summary="Counts",
            outputSchema=schema, visibility="private",
        )  # fmt: skip
        assert r.status_code == 201, r.text
        body = r.json()
        assert (body["title"], body["instructions"], body["summary"]) == (
            "Scout",
            "Count.",
            "Counts",
        )
        assert body["outputSchema"] == schema
        assert body["visibility"] == "private"

    @pytest.mark.parametrize(
        ("field", "limit"),
        [("title", 200), ("instructions", 20_000), ("prompt", 10_000), ("summary", 80)],
    )
    async def test_max_length_exact_and_one_past(
        self, client: httpx.AsyncClient, member: Member, field: str, limit: int
    ) -> None:
        extra = {"instructions": "given"} if field == "prompt" else {}
        ok = await create(client, member, **{field: "x" * limit, **extra})
        assert ok.status_code == 201, ok.text
        too_long = await create(client, member, **{field: "x" * (limit + 1), **extra})
        assert_error(too_long, 400, field)

    async def test_title_min_length(self, client: httpx.AsyncClient, member: Member) -> None:
        assert_error(await create(client, member, title=""), 400, "title")
        assert (await create(client, member, title="x")).status_code == 201

    async def test_unknown_field(self, client: httpx.AsyncClient, member: Member) -> None:
        error = assert_error(await create(client, member, colour="brown"), 400, "colour")
        assert "Unknown field" in error["message"]

    async def test_bad_visibility(self, client: httpx.AsyncClient, member: Member) -> None:
        assert_error(await create(client, member, visibility="secret"), 400, "visibility")

    async def test_wrong_type(self, client: httpx.AsyncClient, member: Member) -> None:
        assert_error(await create(client, member, title=5), 400, "title")
        assert_error(await create(client, member, outputSchema=[1]), 400, "outputSchema")

    @pytest.mark.parametrize(
        "schema",
        [
            {"type": "object", "properties": {"a": {"type": "nonsense"}}},
            {"type": "object", "required": "a"},
            {"type": "string"},
        ],
    )
    async def test_invalid_output_schema(
        self, client: httpx.AsyncClient, member: Member, schema: dict
    ) -> None:
        assert_error(await create(client, member, outputSchema=schema), 400, "outputSchema")

    async def test_invalid_json(self, client: httpx.AsyncClient, member: Member) -> None:
        r = await client.post(
            "/api/workers",
            content=b"{not json",
            headers={**member.headers, "content-type": "application/json"},
        )
        assert_error(r, 400)

    async def test_body_too_large(self, client: httpx.AsyncClient, member: Member) -> None:
        r = await client.post(
            "/api/workers",
            content=b'{"instructions": "' + b"x" * (1024 * 1024) + b'"}',
            headers={**member.headers, "content-type": "application/json"},
        )
        assert_error(r, 413)

    async def test_prompt_writes_instructions_and_summary(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        prompt = "Watch the Hacker News front page and report posts about Rust compilers."
        r = await create(client, member, prompt=prompt)
        assert r.status_code == 201, r.text
        body = r.json()
        assert "Rust" in body["instructions"]
        assert 0 < len(body["summary"]) <= 80
        again = (await create(client, member, prompt=prompt)).json()
        assert again["instructions"] == body["instructions"]  # the offline model is deterministic

    async def test_prompt_keeps_given_summary(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        r = await create(client, member, prompt="Summarise RFCs.", summary="Mine")
        assert r.json()["summary"] == "Mine"
        assert r.json()["instructions"]


class TestRetrieve:
    async def test_pending_worker_object(self, client: httpx.AsyncClient, member: Member) -> None:
        worker = (await create(client, member, title="Rex")).json()
        r = await client.get(f"/api/workers/{worker['id']}", headers=member.headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["object"] == "worker"
        assert body["status"] == "pending"
        assert body["running"] is False
        assert body["output"] == []
        assert body["output_text"] == ""
        assert body["messages"] == []
        assert body["files"] == []
        assert body["sources"] == []
        assert body["error"] is None
        assert body["structured_output"] is None
        assert isinstance(body["created_at"], int)
        assert body["url"].endswith(worker["id"])
        assert "taskId" in body["metadata"]

    async def test_unknown(self, client: httpx.AsyncClient, member: Member) -> None:
        assert_error(await client.get("/api/workers/wrk_nope", headers=member.headers), 404)

    async def test_email(self, client: httpx.AsyncClient, member: Member) -> None:
        a = (await create(client, member, title="Same Name")).json()
        b = (await create(client, member, title="Same Name")).json()
        emails = []
        for worker in (a, b):
            r = await client.get(f"/api/workers/{worker['id']}/email", headers=member.headers)
            assert r.status_code == 200
            emails.append(r.json()["email"])
        assert all(e.endswith("@mail.kennel.test") and e.startswith("same-name-") for e in emails)
        assert emails[0] != emails[1]


class TestUpdate:
    async def test_partial_update_and_versions(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker = (await create(client, member, title="A", instructions="v1", summary="s")).json()
        url = f"/api/workers/{worker['id']}"
        r = await client.patch(url, json={"title": "B"}, headers=member.headers)
        assert r.status_code == 200, r.text
        assert (r.json()["title"], r.json()["summary"]) == ("B", "s")
        assert r.json()["instructionsVersion"] == 1
        r = await client.patch(url, json={"instructions": "v2"}, headers=member.headers)
        assert (r.json()["instructions"], r.json()["instructionsVersion"]) == ("v2", 2)
        r = await client.patch(url, json={"instructions": "v2"}, headers=member.headers)
        assert r.json()["instructionsVersion"] == 3

    async def test_versions_are_kept(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        from kennel.workers.repository import instructions_of

        worker = (await create(client, member, instructions="first")).json()
        url = f"/api/workers/{worker['id']}"
        await client.patch(url, json={"instructions": "second"}, headers=member.headers)
        for version, text in [(1, "first"), (2, "second")]:
            async with app.state.runtime.db.read() as r:
                assert await instructions_of(r, worker["id"], version) == text

    async def test_output_schema_null_clears(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        schema = {"type": "object"}
        worker = (await create(client, member, outputSchema=schema)).json()
        url = f"/api/workers/{worker['id']}"
        r = await client.patch(url, json={"summary": "x"}, headers=member.headers)
        assert r.json()["outputSchema"] == schema
        r = await client.patch(url, json={"outputSchema": None}, headers=member.headers)
        assert r.status_code == 200
        assert r.json()["outputSchema"] is None

    async def test_limits_and_nulls(self, client: httpx.AsyncClient, member: Member) -> None:
        worker = (await create(client, member)).json()
        url = f"/api/workers/{worker['id']}"
        for field, limit in [("title", 200), ("instructions", 20_000), ("summary", 80)]:
            ok = await client.patch(url, json={field: "y" * limit}, headers=member.headers)
            assert ok.status_code == 200, ok.text
            bad = await client.patch(url, json={field: "y" * (limit + 1)}, headers=member.headers)
            assert_error(bad, 400, field)
        assert_error(
            await client.patch(url, json={"title": None}, headers=member.headers), 400, "title"
        )
        assert_error(
            await client.patch(url, json={"prompt": "x"}, headers=member.headers), 400, "prompt"
        )
        bad_schema = {"outputSchema": {"type": "object", "properties": 3}}
        assert_error(
            await client.patch(url, json=bad_schema, headers=member.headers), 400, "outputSchema"
        )
        # Nothing of the failed requests was written.
        after = await client.patch(url, json={}, headers=member.headers)
        assert after.json()["title"] == "y" * 200


class TestDelete:
    async def test_delete_then_404(self, client: httpx.AsyncClient, member: Member) -> None:
        worker = (await create(client, member)).json()
        url = f"/api/workers/{worker['id']}"
        r = await client.delete(url, headers=member.headers)
        assert r.status_code == 200
        assert r.json() == {"deleted": True}
        assert_error(await client.get(url, headers=member.headers), 404)
        assert_error(await client.patch(url, json={"title": "x"}, headers=member.headers), 404)
        assert_error(await client.delete(url, headers=member.headers), 404)
        assert_error(await client.get(f"{url}/email", headers=member.headers), 404)

    async def test_only_creator_deletes(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        colleague = await make_member(app, organization=member.organization)
        worker = (await create(client, member)).json()
        url = f"/api/workers/{worker['id']}"
        assert_error(await client.delete(url, headers=colleague.headers), 403)
        assert (await client.get(url, headers=colleague.headers)).status_code == 200


class TestVisibility:
    async def test_private_worker(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        colleague = await make_member(app, organization=member.organization)
        worker = (await create(client, member, visibility="private")).json()
        url = f"/api/workers/{worker['id']}"
        assert (await client.get(url, headers=member.headers)).status_code == 200
        assert_error(await client.get(url, headers=colleague.headers), 404)
        assert_error(await client.patch(url, json={"title": "x"}, headers=colleague.headers), 404)

        invite = await client.put(f"{url}/members/{colleague.user_id}", headers=member.headers)
        assert invite.status_code == 200, invite.text
        assert invite.json()["userId"] == colleague.user_id
        assert (await client.get(url, headers=colleague.headers)).status_code == 200
        members = (await client.get(f"{url}/members", headers=colleague.headers)).json()
        assert [m["userId"] for m in members["members"]] == [colleague.user_id]
        # Invited members may not manage the invitation list or the visibility.
        assert_error(
            await client.delete(f"{url}/members/{colleague.user_id}", headers=colleague.headers),
            403,
        )
        assert_error(
            await client.patch(url, json={"visibility": "public"}, headers=colleague.headers), 403
        )

        removed = await client.delete(f"{url}/members/{colleague.user_id}", headers=member.headers)
        assert removed.json() == {"removed": True}
        assert_error(await client.get(url, headers=colleague.headers), 404)
        assert_error(
            await client.delete(f"{url}/members/{colleague.user_id}", headers=member.headers), 404
        )

    async def test_public_worker_visible_to_organization(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        colleague = await make_member(app, organization=member.organization)
        worker = (await create(client, member)).json()
        r = await client.patch(
            f"/api/workers/{worker['id']}", json={"summary": "edited"}, headers=colleague.headers
        )
        assert r.status_code == 200
        assert r.json()["summary"] == "edited"

    async def test_cannot_invite_outsider(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        outsider = await make_member(app)
        worker = (await create(client, member, visibility="private")).json()
        r = await client.put(
            f"/api/workers/{worker['id']}/members/{outsider.user_id}", headers=member.headers
        )
        assert_error(r, 404)


class TestModelFailure:
    async def test_provider_error_is_502_and_nothing_saved(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        from pydantic_ai.exceptions import ModelHTTPError
        from pydantic_ai.models.function import FunctionModel
        from sqlalchemy import func, select

        from kennel.models import workers

        def refuse(messages, info):  # type: ignore[no-untyped-def]
            raise ModelHTTPError(429, "test-model", body={"error": "quota exhausted for this key"})

        async def count() -> int:
            async with app.state.runtime.db.read() as r:
                query = select(func.count()).where(
                    workers.c.organization_id == member.organization_id
                )
                return int(await r.scalar(query) or 0)

        original = app.state.runtime.model
        app.state.runtime.model = FunctionModel(refuse, model_name="test-model")
        try:
            r = await create(client, member, prompt="Write release notes.")
        finally:
            app.state.runtime.model = original
        error = assert_error(r, 502)
        assert error["type"] == "model_error"
        assert "quota exhausted" in error["message"]
        assert await count() == 0
        # With instructions given, the model is not asked at all.
        app.state.runtime.model = FunctionModel(refuse, model_name="test-model")
        try:
            ok = await create(client, member, prompt="ignored", instructions="Given.")
        finally:
            app.state.runtime.model = original
        assert ok.status_code == 201


async def test_email_local_part_clash_picks_another(
    client: httpx.AsyncClient, member: Member, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kennel.workers import service

    candidates = iter(["clash-00000001", "clash-00000001", "clash-00000002"])
    monkeypatch.setattr(service, "email_local_part", lambda title: next(candidates))
    first = (await create(client, member, title="Clash")).json()
    second = await create(client, member, title="Clash")
    assert second.status_code == 201, second.text
    assert first["email"].startswith("clash-00000001@")
    assert second.json()["email"].startswith("clash-00000002@")


async def test_writing_instructions_does_not_block_other_writes(
    app: FastAPI, client: httpx.AsyncClient, member: Member
) -> None:
    """On SQLite a write transaction holds the database's one write lock: not during an LLM call."""
    import asyncio

    from pydantic_ai.messages import ModelMessage, ModelResponse
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    from kennel.agents.offline_model import OfflineModel

    release = asyncio.Event()
    offline = OfflineModel()

    async def slow(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        await release.wait()
        return await offline._respond(messages, info)

    original = app.state.runtime.model
    app.state.runtime.model = FunctionModel(slow, model_name="slow")
    try:
        writing = asyncio.create_task(create(client, member, prompt="Guard the gate."))
        await asyncio.sleep(0.3)  # the first request is now waiting on the model
        other = await asyncio.wait_for(create(client, member, title="Meanwhile"), timeout=10)
        assert other.status_code == 201, other.text
        release.set()
        written = await writing
    finally:
        release.set()
        app.state.runtime.model = original
    assert written.status_code == 201, written.text
    assert "Guard the gate" in written.json()["instructions"]


class TestRetrieveAsOfTask:
    """`GET /api/workers/{id}?taskId=` (sent by the TypeScript SDK 0.14): that task's state."""

    async def test_the_state_of_the_task_asked_for(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        first = await post_task(client, member, input="First task", workerId=worker_id)
        await post_task(client, member, input="Second task", workerId=worker_id)
        first_id = first.json()["metadata"]["taskId"]
        r = await client.get(
            f"/api/workers/{worker_id}", params={"taskId": first_id}, headers=member.headers
        )
        assert r.status_code == 200, r.text
        assert r.json()["metadata"]["taskId"] == first_id
        assert r.json()["output_text"] == first.json()["output_text"]
        latest = await client.get(f"/api/workers/{worker_id}", headers=member.headers)
        assert latest.json()["metadata"]["taskId"] != first_id
        streamed = await client.get(
            f"/api/workers/{worker_id}",
            params={"taskId": first_id, "stream": "true"},
            headers=member.headers,
        )
        assert streamed.status_code == 200, streamed.text
        assert f'"taskId":"{first_id}"' in streamed.text.replace(" ", "")
        assert "First task" in streamed.text
        assert "Second task" not in streamed.text

    async def test_a_task_of_another_worker_or_none_is_404(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        other_id = await new_worker_id(client, member)
        other = await post_task(client, member, input="Elsewhere", workerId=other_id)
        for task_id in (other.json()["metadata"]["taskId"], "no-such-task"):
            r = await client.get(
                f"/api/workers/{worker_id}", params={"taskId": task_id}, headers=member.headers
            )
            assert r.status_code == 404, r.text
