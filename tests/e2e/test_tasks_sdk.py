"""Every Tasks endpoint of a live `kennel serve`, through the official SDKs.

The Python SDK (strict mode) has `tasks.create`, `tasks.retrieve` and `tasks.delete`; the list
and `/turns` endpoints go through its generic `client.get(path, cast_to=...)` with models built
from the SDK's own `Task` and `Turn`. Then one round trip through the TypeScript SDK
(`@ramensoft/handinger`, installed into tests/e2e/ts with npm on first use).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import handinger
import pytest
from handinger import Handinger
from handinger._models import BaseModel as SdkModel
from handinger.types import Task, TaskWithTurns, Worker
from handinger.types.task_with_turns import Turn
from pydantic import Field

from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.e2e

ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
TS_DIR = Path(__file__).parent / "ts"
TS_SDK = "@ramensoft/handinger"
NPM_TIMEOUT_SECONDS = 180


class TaskList(SdkModel):
    """`GET /api/tasks`, which the Python SDK has no method for."""

    tasks: list[Task]
    page: int
    page_count: int = Field(alias="pageCount")
    total_count: int = Field(alias="totalCount")


class TurnList(SdkModel):
    """`GET /api/tasks/{taskId}/turns`, which the Python SDK has no method for."""

    task_id: str = Field(alias="taskId")
    items: list[Turn]


def task_list(sdk: Handinger, **params: Any) -> TaskList:
    return sdk.get("/api/tasks", cast_to=TaskList, options={"params": params})


def turn_list(sdk: Handinger, task_id: str) -> TurnList:
    return sdk.get(f"/api/tasks/{task_id}/turns", cast_to=TurnList)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def assert_completed(worker: Worker, text: str) -> None:
    assert worker.object == "worker"
    assert worker.status == "completed"
    assert worker.running is False
    assert worker.error is None
    assert worker.output_text.startswith(f"Done: {text}")
    assert worker.output[0].content[0].text == worker.output_text
    assert worker.usage is not None
    assert (worker.usage.credits or 0) >= 1
    assert worker.metadata["triggeredBy"] == "api"


class TestCreate:
    def test_on_a_worker(self, sdk: Handinger) -> None:
        template = sdk.workers.create(title="Task Runner", instructions="Answer briefly.")
        worker = sdk.tasks.create(input="Name three dog breeds", worker_id=template.id)
        assert isinstance(worker, Worker)
        assert worker.id == template.id
        assert_completed(worker, "Name three dog breeds")
        task_id = str(worker.metadata["taskId"])
        assert task_id.startswith("tsk_")
        # The Worker object of GET /api/workers/{id} is now the same state.
        again = sdk.workers.retrieve(template.id)
        assert again.output_text == worker.output_text
        assert again.metadata["taskId"] == task_id

    def test_without_a_worker(self, sdk: Handinger) -> None:
        worker = sdk.tasks.create(input="Count the dogs in the park", budget="low")
        assert worker.id.startswith("wrk_")
        assert_completed(worker, "Count the dogs in the park")
        # The worker made on the fly has the input as its instructions.
        template = sdk.workers.update(worker.id)
        assert template.instructions == "Count the dogs in the park"

    def test_follow_up_with_task_id(self, sdk: Handinger) -> None:
        template = sdk.workers.create(instructions="Keep track of the conversation.")
        task_id = unique("sdk-conversation")
        first = sdk.tasks.create(input="First question", worker_id=template.id, task_id=task_id)
        assert first.metadata["taskId"] == task_id
        second = sdk.tasks.create(input="Second question", task_id=task_id)
        assert_completed(second, "Second question")
        assert second.metadata["taskId"] == task_id
        texts = json.dumps(second.messages)
        assert "First question" in texts
        assert "Second question" in texts

        found = sdk.tasks.retrieve(task_id)
        assert isinstance(found, TaskWithTurns)
        assert found.task.id == task_id
        assert found.task.worker_id == template.id
        assert found.task.status == "completed"
        assert found.task.totals.turn_count == 2
        assert [t.seq for t in found.turns] == [1, 2]
        assert [t.input for t in found.turns] == ["First question", "Second question"]
        assert found.turns[1].input_tokens > found.turns[0].input_tokens  # it saw the history
        assert found.task.totals.credits == sum(t.credits for t in found.turns)

    def test_errors(self, live_server: LiveServer, sdk: Handinger) -> None:
        with pytest.raises(handinger.NotFoundError):
            sdk.tasks.create(input="x", worker_id="wrk_missing")
        with pytest.raises(handinger.BadRequestError) as bad:
            sdk.tasks.create(input="x", budget="huge")  # type: ignore[arg-type]
        assert bad.value.body["error"]["param"] == "budget"  # type: ignore[index]
        # A task of another organization is invisible: the same id makes a task of their own,
        # so no answer tells whether the id exists elsewhere.
        mine = sdk.tasks.create(input="Mine alone", task_id=unique("private"))
        stranger = live_server.create_member(org=unique("rivals"))
        with live_server.sdk(stranger.key) as theirs:
            task_id = str(mine.metadata["taskId"])
            with pytest.raises(handinger.NotFoundError):
                theirs.tasks.retrieve(task_id)
            their_own = theirs.tasks.create(input="Reuse", task_id=task_id)
            assert their_own.metadata["taskId"] == task_id
            assert their_own.id != mine.id  # a worker made on the fly for them
            assert theirs.tasks.retrieve(task_id).task.worker_id == their_own.id
        assert sdk.tasks.retrieve(task_id).task.worker_id == mine.id
        assert len(sdk.tasks.retrieve(task_id).turns) == 1  # theirs is not a follow-up of mine


class TestRetrieve:
    def test_task_with_turns(self, live_server: LiveServer, sdk: Handinger) -> None:
        worker = sdk.tasks.create(input="Describe a beagle")
        found = sdk.tasks.retrieve(str(worker.metadata["taskId"]))
        task = found.task
        assert task.status == "completed"
        assert task.triggered_by == "api"
        assert task.title == "Describe a beagle"
        assert ISO_Z.fullmatch(task.created_at)
        assert ISO_Z.fullmatch(task.completed_at or "")
        assert task.url == f"{live_server.base_url}/tasks/{task.id}"
        assert task.organization_id.startswith("org_")
        assert (task.created_by_user_id or "").startswith("usr_")
        (turn,) = found.turns
        assert turn.id == worker.metadata["turnId"]
        assert turn.task_id == task.id
        assert turn.role == "user"
        assert turn.status == "completed"
        assert turn.output_text == worker.output_text
        assert turn.input_tokens > 0
        assert turn.output_tokens > 0
        assert turn.credits == task.totals.credits == worker.usage.credits  # type: ignore[union-attr]
        assert turn.duration_ms == task.totals.duration_ms
        assert ISO_Z.fullmatch(turn.started_at)
        assert turn.structured_output is None

    def test_unknown_task(self, sdk: Handinger) -> None:
        with pytest.raises(handinger.NotFoundError) as missing:
            sdk.tasks.retrieve("tsk_does_not_exist")
        assert missing.value.status_code == 404


class TestListAndTurns:
    def test_list_newest_first_and_filters(self, sdk: Handinger) -> None:
        template = sdk.workers.create(instructions="List me.")
        ids = [
            str(sdk.tasks.create(input=f"job {i}", worker_id=template.id).metadata["taskId"])
            for i in range(3)
        ]
        listed = task_list(sdk, workerId=template.id)
        assert [t.id for t in listed.tasks] == ids[::-1]
        assert (listed.page, listed.page_count, listed.total_count) == (1, 1, 3)
        assert task_list(sdk, workerId=template.id, status="completed").total_count == 3
        assert task_list(sdk, workerId=template.id, status="running").total_count == 0
        beyond = task_list(sdk, workerId=template.id, page=2)
        assert (beyond.tasks, beyond.page, beyond.total_count) == ([], 2, 3)

    def test_turns_in_order(self, sdk: Handinger) -> None:
        task_id = unique("turns")
        sdk.tasks.create(input="one", task_id=task_id)
        sdk.tasks.create(input="two", task_id=task_id)
        turns = turn_list(sdk, task_id)
        assert turns.task_id == task_id
        assert [(t.seq, t.input, t.status) for t in turns.items] == [
            (1, "one", "completed"),
            (2, "two", "completed"),
        ]
        retrieved = sdk.tasks.retrieve(task_id)
        assert [t.to_dict() for t in turns.items] == [t.to_dict() for t in retrieved.turns]


class TestDelete:
    def test_archive(self, live_server: LiveServer, sdk: Handinger) -> None:
        template = sdk.workers.create(instructions="Archive me.")
        task_id = str(
            sdk.tasks.create(input="to archive", worker_id=template.id).metadata["taskId"]
        )
        colleague = live_server.create_member(org="default")  # the bootstrap key's organization
        with live_server.sdk(colleague.key) as theirs:
            with pytest.raises(handinger.PermissionDeniedError):
                theirs.tasks.delete(task_id)
        deleted = sdk.tasks.delete(task_id)
        assert deleted.archived is True
        assert task_list(sdk, workerId=template.id).total_count == 0
        kept = sdk.tasks.retrieve(task_id)  # turns stay
        assert kept.to_dict()["task"]["archived"] is True
        assert len(kept.turns) == 1
        assert sdk.tasks.delete(task_id).archived is True  # again: still archived
        with pytest.raises(handinger.ConflictError):
            sdk.tasks.create(input="more", task_id=task_id)
        with pytest.raises(handinger.NotFoundError):
            sdk.tasks.delete("tsk_does_not_exist")


# A schema no answer can satisfy: the offline model's answer is refused, so the turn fails.
UNSATISFIABLE = {
    "type": "object",
    "properties": {"size": {"type": "integer", "minimum": 10, "maximum": 1}},
    "required": ["size"],
}


class TestFailedTurn:
    def test_error_in_the_worker_object(self, live_server: LiveServer, sdk: Handinger) -> None:
        template = sdk.workers.create(instructions="Measure.", output_schema=UNSATISFIABLE)
        # The SDK's Worker model declares `error: None`, so strict mode cannot parse the Worker
        # of a failed turn: the strict client refuses the (correct) response...
        with pytest.raises(handinger.APIResponseValidationError):
            sdk.tasks.create(input="How big is a beagle?", worker_id=template.id)
        # ...and failures are read with a non-strict client instead.
        lenient = Handinger(
            base_url=live_server.base_url, api_key=live_server.api_key, max_retries=0
        )
        with lenient:
            raw = lenient.tasks.with_raw_response.create(
                input="How big is a dachshund?", worker_id=template.id
            )
            worker = raw.parse()
            error = raw.http_response.json()["error"]
            assert error["code"] == "model_output_invalid"
            assert "size" in error["message"]
            assert worker.status == "completed"
            assert worker.running is False
            assert worker.structured_output is None
            assert worker.metadata["taskStatus"] == "error"
        # Task and Turn have no error-typed fields, so the strict client reads them fine.
        found = sdk.tasks.retrieve(str(worker.metadata["taskId"]))
        assert found.task.status == "error"
        assert found.turns[0].status == "error"
        assert found.to_dict()["turns"][0]["error"] == error
        assert task_list(sdk, workerId=template.id, status="error").total_count == 2


def _npm_install() -> None:
    """Install the TypeScript SDK into tests/e2e/ts once (node_modules is not committed)."""
    if (TS_DIR / "node_modules" / TS_SDK / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: the TypeScript SDK round trip needs Node.js 20+")
    command = [npm, "ci", "--no-audit", "--no-fund", "--prefix", str(TS_DIR)]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=NPM_TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"`npm ci` for {TS_SDK} took over {NPM_TIMEOUT_SECONDS}s (registry offline?)")
    if done.returncode != 0:
        pytest.skip(f"{TS_SDK} could not be installed with `{' '.join(command)}`:\n{done.stderr}")


class TestTypeScriptSdk:
    def test_round_trip(self, live_server: LiveServer) -> None:
        node = shutil.which("node")
        if node is None:
            pytest.skip("node is not installed: the TypeScript SDK round trip needs Node.js 20+")
        _npm_install()
        task_id = unique("typescript")
        env = {
            **os.environ,
            "HANDINGER_BASE_URL": live_server.base_url,
            "HANDINGER_API_KEY": live_server.api_key,
        }
        done = subprocess.run(
            [node, "roundtrip.mjs", task_id],
            cwd=TS_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        seen = json.loads(done.stdout)

        template, created, follow_up = seen["template"], seen["created"], seen["followUp"]
        assert template["id"].startswith("wrk_")
        for worker, text in ((created, "Hello from TypeScript"), (follow_up, "And a follow-up")):
            assert worker["id"] == template["id"]
            assert worker["object"] == "worker"
            assert worker["status"] == "completed"
            assert worker["running"] is False
            assert worker["error"] is None
            assert worker["output_text"].startswith(f"Done: {text}")
            assert worker["metadata"]["taskId"] == task_id

        task = seen["retrieved"]["task"]
        assert task["id"] == task_id
        assert task["workerId"] == template["id"]
        assert task["status"] == "completed"
        assert task["totals"]["turnCount"] == 2
        turns = seen["turns"]
        assert turns["taskId"] == task_id
        assert [(t["seq"], t["input"], t["status"]) for t in turns["items"]] == [
            (1, "Hello from TypeScript", "completed"),
            (2, "And a follow-up", "completed"),
        ]
        assert turns["items"] == seen["retrieved"]["turns"]
        assert turns["items"][1]["outputText"] == follow_up["output_text"]
        assert seen["worker"]["output_text"] == follow_up["output_text"]
        assert seen["missing"]["notFound"] is True
        assert seen["missing"]["status"] == 404
        assert seen["missing"]["error"]["error"]["type"]

        # What the TypeScript SDK did is what the server recorded.
        with live_server.sdk() as sdk:
            recorded = sdk.tasks.retrieve(task_id)
        assert [t.id for t in recorded.turns] == [t["id"] for t in turns["items"]]
