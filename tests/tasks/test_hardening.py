"""Inputs that used to wedge a turn for ever or answer 5xx, each found by probing (issue 8).

Every turn ends, whatever goes wrong inside it; bad input is a 400 that names its field and
writes nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from dbos import DBOS
from fastapi import FastAPI
from sqlalchemy import update

from kennel.models import tasks, workers
from kennel.tasks import repository as tasks_repo
from kennel.tasks.workflows import finish_abandoned_turns
from tests.factories import Member, count_rows
from tests.factories.tasks import post_task
from tests.factories.workers import new_worker, new_worker_id

DRAFT_07 = {
    "type": "object",
    "definitions": {"s": {"type": "string", "minLength": 2}},
    "properties": {"a": {"$ref": "#/definitions/s"}},
    "required": ["a"],
}


def nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"x": schema}}
    return schema


async def follow_up_runs(client: httpx.AsyncClient, member: Member, task_id: str) -> None:
    r = await post_task(client, member, input="And now?", taskId=task_id)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "completed"


class TestEveryTurnEnds:
    async def test_a_draft_07_schema_with_definitions_works_end_to_end(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member, outputSchema=DRAFT_07)
        r = await post_task(client, member, input="Fill it in", workerId=worker_id)
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["error"] is None, answer["error"]
        assert isinstance(answer["structured_output"]["a"], str)
        assert len(answer["structured_output"]["a"]) >= 2

    async def test_a_schema_stored_before_it_was_checked_ends_the_turn_in_error(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        """A dangling `$ref` is refused now; one already stored (by an older version) ends its
        turn with an error instead of wedging it, and the task takes a follow-up."""
        worker_id = await new_worker_id(client, member)
        bad = {"type": "object", "properties": {"a": {"$ref": "#/definitions/missing"}}}
        async with app.state.runtime.db.write() as w:
            await w.execute(
                update(workers).where(workers.c.id == worker_id).values(output_schema=bad)
            )
        r = await post_task(client, member, input="Try", workerId=worker_id)
        assert r.status_code == 200, r.text
        error = r.json()["error"]
        assert error["code"] == "invalid_output_schema"
        assert "points at nothing" in error["message"]
        async with app.state.runtime.db.write() as w:
            await w.execute(
                update(workers).where(workers.c.id == worker_id).values(output_schema=None)
            )
        await follow_up_runs(client, member, r.json()["metadata"]["taskId"])

    async def test_a_folder_in_the_way_is_a_tool_error_and_the_turn_completes(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        r = await client.post(
            "/api/tasks",
            data={"input": "Keep this", "workerId": worker_id},
            files=[("files", ("report.md/inside.txt", b"x", "text/plain"))],
            headers=member.headers,
        )
        assert r.status_code == 200, r.text
        r = await post_task(
            client, member, input="Write a file named report.md containing hi", workerId=worker_id
        )
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["status"] == "completed"
        assert answer["error"] is None
        tool_results = json.dumps(answer["messages"])
        assert "is a folder" in tool_results  # what the model was told
        await follow_up_runs(client, member, answer["metadata"]["taskId"])

    @pytest.mark.parametrize(("length", "written"), [(250, True), (300, False)])
    async def test_long_file_names(
        self, client: httpx.AsyncClient, member: Member, length: int, written: bool
    ) -> None:
        name = "n" * (length - 4) + ".txt"
        worker_id = await new_worker_id(client, member)
        r = await post_task(
            client, member, input=f"Write a file named {name} containing hi", workerId=worker_id
        )
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["status"] == "completed"
        assert [f["filename"] for f in answer["files"]] == ([name] if written else [])
        if not written:
            assert "longer than 255 bytes" in json.dumps(answer["messages"])

    async def test_an_unexpected_error_ends_the_turn_and_logs_its_traceback(
        self,
        client: httpx.AsyncClient,
        member: Member,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        from kennel.agents import tools

        async def broken_write(*_: Any) -> dict[str, Any]:
            raise RuntimeError("injected into the write step")

        monkeypatch.setattr(tools, "_write", broken_write)
        worker_id = await new_worker_id(client, member)
        with caplog.at_level(logging.ERROR, logger="kennel.tasks"):
            r = await post_task(
                client, member, input="Write a file named a.txt containing x", workerId=worker_id
            )
        assert r.status_code == 200, r.text
        answer = r.json()
        turn_id = answer["metadata"]["turnId"]
        assert answer["error"]["code"] == "internal_error"
        assert turn_id in answer["error"]["message"]
        logged = [rec for rec in caplog.records if getattr(rec, "turnId", None) == turn_id]
        assert logged, caplog.text
        assert logged[0].exc_info is not None
        assert "injected into the write step" in str(logged[0].exc_info[1])
        monkeypatch.undo()
        await follow_up_runs(client, member, answer["metadata"]["taskId"])

    async def test_a_turn_whose_workflow_ended_is_finished_at_start_up(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        member: Member,
        reconfigure: Callable[..., None],
    ) -> None:
        """As an older version left them: the row says running, the workflow is gone."""
        from kennel.agents.offline_model import OfflineModel

        reconfigure(model=OfflineModel(delay_seconds=5), task_wait_seconds=0)
        r = await post_task(
            client, member, input="Slow", workerId=await new_worker_id(client, member)
        )
        turn_id, task_id = r.json()["metadata"]["turnId"], r.json()["metadata"]["taskId"]
        deadline = time.monotonic() + 10
        while (await DBOS.get_workflow_status_async(turn_id)) is None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await DBOS.cancel_workflow_async(turn_id)  # without ending the turn's row
        async with app.state.runtime.db.read() as rd:
            assert (await tasks_repo.turn(rd, turn_id)).status in ("pending", "running")
        assert await finish_abandoned_turns(app.state.runtime) >= 1
        async with app.state.runtime.db.read() as rd:
            turn = await tasks_repo.turn(rd, turn_id)
        assert (turn.status, turn.error_code) == ("error", "internal_error")
        reconfigure(model=OfflineModel(), task_wait_seconds=60)
        await follow_up_runs(client, member, task_id)


class TestBoundedInput:
    async def test_a_body_nested_thousands_deep_is_400(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        before = await count_rows(app, tasks, member.organization_id)
        body = '{"input": "x", "workerId": ' + "[" * 5000 + "]" * 5000 + "}"
        r = await client.post(
            "/api/tasks",
            content=body,
            headers={**member.headers, "content-type": "application/json"},
        )
        assert r.status_code == 400, r.text
        assert "levels deep" in r.json()["error"]["message"]
        assert await count_rows(app, tasks, member.organization_id) == before
        deep = '{"input": "x", "workerId": ' + "[" * 100 + "]" * 100 + "}"
        r = await client.post(
            "/api/tasks",
            content=deep,
            headers={**member.headers, "content-type": "application/json"},
        )
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == "workerId"

    @pytest.mark.parametrize("depth", [40, 150, 400])
    async def test_an_output_schema_nested_too_deep_is_400_naming_it(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member, depth: int
    ) -> None:
        before = await count_rows(app, workers, member.organization_id)
        r = await client.post(
            "/api/workers", json={"outputSchema": nested(depth)}, headers=member.headers
        )
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == "outputSchema"
        assert await count_rows(app, workers, member.organization_id) == before
        worker = await new_worker(client, member)
        r = await client.patch(
            f"/api/workers/{worker['id']}",
            json={"outputSchema": nested(depth)},
            headers=member.headers,
        )
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == "outputSchema"

    @pytest.mark.parametrize(
        ("schema", "says"),
        [
            ({"type": "object", "properties": {"a": {"$ref": "#/definitions/no"}}}, "nothing"),
            ({"type": "object", "properties": {"a": {"$ref": "https://x.test/s"}}}, "local"),
            ({"type": "object", "properties": {"a": {"$ref": "other.json#/a"}}}, "local"),
            ({"type": "object", "properties": {"a": {"$ref": "#"}}}, "recursive"),
            ({"type": "object", "description": "x" * 70_000}, "bytes"),
        ],
    )
    async def test_unusable_output_schemas_are_400(
        self, client: httpx.AsyncClient, member: Member, schema: dict[str, Any], says: str
    ) -> None:
        r = await client.post("/api/workers", json={"outputSchema": schema}, headers=member.headers)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == "outputSchema"
        assert says in r.json()["error"]["message"]

    @pytest.mark.parametrize(
        ("path", "body", "param"),
        [
            (
                "/api/workers",
                '{"outputSchema": {"type": "object", "properties": {"\\ud800": {}}}}',
                "outputSchema",
            ),
            ("/api/workers", '{"title": "Rex \\udc00"}', "title"),
            ("/api/tasks", '{"input": "\\ud83d alone"}', "input"),
        ],
    )
    async def test_lone_surrogates_are_400_naming_the_field(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        member: Member,
        path: str,
        body: str,
        param: str,
    ) -> None:
        before = await count_rows(app, workers, member.organization_id)
        headers = {**member.headers, "content-type": "application/json"}
        r = await client.post(path, content=body, headers=headers)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == param
        assert "Unicode" in r.json()["error"]["message"]
        assert await count_rows(app, workers, member.organization_id) == before


class TestUploadNames:
    @pytest.mark.parametrize(
        ("name", "says"),
        [
            ("line\nbreak.txt", "control"),
            ("evil\u202etxt.exe", "text-direction"),
            ("a" * 252 + "é.txt", "255 bytes"),
            ("../up.txt", ".."),
        ],
    )
    async def test_refused_names_are_400_and_write_nothing(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member, name: str, says: str
    ) -> None:
        worker_id = await new_worker_id(client, member)
        # By hand: httpx would percent-encode the newline in the part's header.
        boundary = "kennel-boundary"
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="input"\r\n\r\nTake it\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="workerId"\r\n\r\n'
            f"{worker_id}\r\n"
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="{name}"\r\nContent-Type: text/plain\r\n\r\nx\r\n--{boundary}--\r\n'
        ).encode()
        r = await client.post(
            "/api/tasks",
            content=body,
            headers={**member.headers, "content-type": f"multipart/form-data; boundary={boundary}"},
        )
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == "files"
        assert says in r.json()["error"]["message"]
        assert await app.state.runtime.workspace(worker_id).list() == []

    async def test_a_file_and_a_folder_never_share_a_name(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)

        async def send(name: str) -> httpx.Response:
            return await client.post(
                "/api/tasks",
                data={"input": "Take it", "workerId": worker_id},
                files=[("files", (name, b"x", "text/plain"))],
                headers=member.headers,
            )

        assert (await send("sub/dir/x.txt")).status_code == 200
        folder = await send("sub/dir")
        assert folder.status_code == 400, folder.text
        assert folder.json()["error"]["message"] == (
            "'sub/dir' is a folder; a file cannot take its name"
        )
        inside = await send("sub/dir/x.txt/deeper.txt")
        assert inside.status_code == 400, inside.text
        assert inside.json()["error"]["message"] == (
            "'sub/dir/x.txt' is a file, so 'sub/dir/x.txt/deeper.txt' cannot be made in it"
        )
        files = await app.state.runtime.workspace(worker_id).list()
        assert [f.path for f in files] == ["sub/dir/x.txt"]

    async def test_a_file_and_a_folder_of_one_name_in_one_request_are_refused(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        r = await client.post(
            "/api/tasks",
            data={"input": "Take them", "workerId": worker_id},
            files=[
                ("files", ("a/b.txt", b"x", "text/plain")),
                ("files", ("a", b"y", "text/plain")),
            ],
            headers=member.headers,
        )
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert (error["message"], error["param"]) == (
            "'a' is a file, so 'a/b.txt' cannot be made in it",
            "files",
        )
        assert await app.state.runtime.workspace(worker_id).list() == []

    async def test_a_255_byte_name_is_written(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        name = "b" * 251 + ".txt"
        worker_id = await new_worker_id(client, member)
        r = await client.post(
            "/api/tasks",
            data={"input": "Take it", "workerId": worker_id},
            files=[("files", (name, b"long", "text/plain"))],
            headers=member.headers,
        )
        assert r.status_code == 200, r.text
        assert [f["filename"] for f in r.json()["files"]] == [name]


class TestSmall:
    async def test_a_task_id_with_a_trailing_newline_is_refused(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        r = await post_task(client, member, input="x", taskId="nl-b60806\n")
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == "taskId"

    async def test_json_lookalike_media_types_are_415(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        headers = {**member.headers, "content-type": "application/jsonx"}
        r = await client.post("/api/tasks", content=b'{"input": "x"}', headers=headers)
        assert r.status_code == 415, r.text
        r = await client.post("/api/workers", content=b"{}", headers=headers)
        assert r.status_code == 415, r.text
        assert "application/json" in r.json()["error"]["message"]

    async def test_another_organizations_task_id_makes_a_task_of_ones_own(
        self, client: httpx.AsyncClient, member: Member, app: FastAPI
    ) -> None:
        from tests.factories import make_member

        other = await make_member(app)
        mine = await post_task(client, member, input="Mine", taskId=f"shared-{member.user_id}")
        theirs = await post_task(client, other, input="Theirs", taskId=f"shared-{member.user_id}")
        assert mine.status_code == theirs.status_code == 200, theirs.text
        assert mine.json()["id"] != theirs.json()["id"]
        for who, answer in ((member, mine), (other, theirs)):
            found = await client.get(f"/api/tasks/shared-{member.user_id}", headers=who.headers)
            assert found.json()["task"]["workerId"] == answer.json()["id"]

    async def test_405_names_every_method_of_the_path(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        r = await client.put("/api/workers/wrk_x", headers=member.headers)
        assert r.status_code == 405
        assert r.headers["allow"] == "DELETE, GET, PATCH"

    async def test_an_unhandled_error_is_logged_with_the_request_id(
        self,
        client: httpx.AsyncClient,
        member: Member,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        from kennel.workers import service

        async def broken(*_: Any, **__: Any) -> Any:
            raise RuntimeError("a bug")

        monkeypatch.setattr(service, "get_worker", broken)
        with caplog.at_level(logging.ERROR, logger="kennel.access"):
            r = await client.get(
                "/api/workers/wrk_x/email", headers={**member.headers, "x-request-id": "req-42"}
            )
        assert r.status_code == 500
        assert r.json()["error"]["type"] == "api_error"
        assert r.headers["x-request-id"] == "req-42"
        (record,) = [rec for rec in caplog.records if rec.levelno == logging.ERROR]
        assert record.exc_info is not None
        assert "a bug" in str(record.exc_info[1])
        assert getattr(record, "requestId", None) == "req-42"
