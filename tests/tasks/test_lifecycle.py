"""A turn's life: queued, running, finished, aborted; what may happen to a task meanwhile.

Slow turns come from `OfflineModel(delay_seconds=...)` or from `HeldModel`, which answers only
once the test lets it; `task_wait_seconds=0` makes `POST /api/tasks` answer at once with
`running: true`, as a client polling a long turn sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from dbos import DBOS
from fastapi import FastAPI
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCalls, FunctionModel

from kennel.agents.offline_model import OfflineModel
from kennel.tasks import control, waiters
from kennel.tasks import repository as tasks
from kennel.tasks.workflows import TURN_QUEUE
from tests.factories import Member
from tests.factories.polling import eventually
from tests.factories.tasks import post_task
from tests.factories.workers import new_worker

# Each answer of the slow model takes two pauses ("Done: <3 words>" streams in two chunks).
DELAY = 0.4
SLOW_TURN_SECONDS = 2 * DELAY
DEADLINE_SECONDS = 20.0


class HeldModel(FunctionModel):
    """Answers "ok" once released; records the instructions each request was sent with.

    The gate is a `threading.Event` polled with `asyncio.sleep`, so it works whichever loop
    DBOS runs the turn's steps on.
    """

    def __init__(self) -> None:
        self.instructions: list[str | None] = []
        self.gate = threading.Event()
        super().__init__(self._respond, stream_function=self._stream, model_name="held")

    async def asked(self) -> int:
        """How many requests reached the model (held or answered)."""
        return len(self.instructions)

    async def _wait(self, info: AgentInfo) -> None:
        self.instructions.append(info.instructions)
        while not self.gate.is_set():
            await asyncio.sleep(0.02)

    async def _respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        await self._wait(info)
        return ModelResponse(parts=[TextPart("ok")])

    async def _stream(
        self, messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | DeltaToolCalls]:
        await self._wait(info)
        yield "ok"


async def start(client: httpx.AsyncClient, member: Member, **body: object) -> dict:
    """POST /api/tasks expecting 200; with `task_wait_seconds=0` it answers while in flight."""
    r = await post_task(client, member, **body)
    assert r.status_code == 200, r.text
    return r.json()


async def start_slow_turn(
    client: httpx.AsyncClient, member: Member, reconfigure: Callable[..., None], text: str
) -> tuple[dict, str, str]:
    """A new worker with a slow turn that is running: (worker, task id, turn id)."""
    reconfigure(model=OfflineModel(delay_seconds=DELAY), task_wait_seconds=0)
    worker = await new_worker(client, member)
    answered = await start(client, member, input=text, workerId=worker["id"])
    task_id = answered["metadata"]["taskId"]
    await wait_turn(client, member, task_id, {"running"})
    return worker, task_id, answered["metadata"]["turnId"]


@contextlib.asynccontextmanager
async def full_queue(
    client: httpx.AsyncClient,
    member: Member,
    reconfigure: Callable[..., None],
    model: HeldModel,
    limit: int,
) -> AsyncIterator[None]:
    """`limit` turns held in `model`, so the next turn waits in the queue; released on exit."""
    reconfigure(model=model, task_wait_seconds=0)
    blockers = await asyncio.gather(
        *(start(client, member, input=f"blocker {i}") for i in range(limit))
    )
    try:
        await eventually(model.asked, lambda n: n >= limit, "a full queue")
        yield
    finally:
        model.gate.set()
    for blocker in blockers:
        await wait_turn(client, member, blocker["metadata"]["taskId"], {"completed"})


async def get_task(client: httpx.AsyncClient, member: Member, task_id: str) -> dict:
    r = await client.get(f"/api/tasks/{task_id}", headers=member.headers)
    assert r.status_code == 200, r.text
    return r.json()


async def wait_turn(
    client: httpx.AsyncClient, member: Member, task_id: str, statuses: set[str], seq: int = 1
) -> dict:
    """The task once its turn `seq` has one of `statuses`."""

    async def probe() -> dict:
        return await get_task(client, member, task_id)

    return await eventually(
        probe,
        lambda t: len(t["turns"]) >= seq and t["turns"][seq - 1]["status"] in statuses,
        f"turn {seq} of {task_id} to be {sorted(statuses)}",
    )


async def workflow_status(turn_id: str) -> str | None:
    status = await DBOS.get_workflow_status_async(turn_id)
    return status.status if status else None


class TestConflict:
    async def test_follow_up_while_a_turn_is_in_flight_is_409(
        self, client: httpx.AsyncClient, member: Member, reconfigure: Callable[..., None]
    ) -> None:
        model = HeldModel()
        reconfigure(model=model, task_wait_seconds=0)
        worker = await new_worker(client, member)
        task_id = f"conflict-{member.user_id}"
        try:
            first = await start(
                client, member, input="First of two", workerId=worker["id"], taskId=task_id
            )
            assert first["running"] is True
            assert first["metadata"]["taskId"] == task_id

            # At once (the turn may still be queued), and again once it is surely running.
            too_soon = await post_task(client, member, input="Too soon", taskId=task_id)
            await eventually(model.asked, lambda n: n >= 1, "the model to be asked")
            # Naming the worker as well changes nothing.
            running = await post_task(
                client, member, input="Still too soon", taskId=task_id, workerId=worker["id"]
            )
            for refused in (too_soon, running):
                assert refused.status_code == 409, refused.text
                error = refused.json()["error"]
                assert error["type"]
                assert task_id in error["message"]
                assert "running" in error["message"]
        finally:
            model.gate.set()

        done = await wait_turn(client, member, task_id, {"completed"})
        assert len(done["turns"]) == 1  # the refused posts left no turn behind
        assert done["task"]["totals"]["turnCount"] == 1
        reconfigure(task_wait_seconds=30)
        follow_up = await start(client, member, input="Now the second", taskId=task_id)
        assert follow_up["status"] == "completed", follow_up
        assert [t["seq"] for t in (await get_task(client, member, task_id))["turns"]] == [1, 2]


class TestRunningState:
    async def test_running_true_and_status_while_in_flight(
        self, client: httpx.AsyncClient, member: Member, reconfigure: Callable[..., None]
    ) -> None:
        model = HeldModel()
        reconfigure(model=model, task_wait_seconds=0)
        worker = await new_worker(client, member)
        answered = await start(client, member, input="Hold on", workerId=worker["id"])
        assert answered["running"] is True
        assert answered["status"] in {"pending", "running"}
        assert answered["output_text"] == ""
        assert answered["error"] is None
        task_id = answered["metadata"]["taskId"]
        try:
            await eventually(model.asked, lambda n: n >= 1, "the model to be asked")
            running = (
                await client.get(f"/api/workers/{worker['id']}", headers=member.headers)
            ).json()
            assert (running["status"], running["running"]) == ("running", True)
            assert running["metadata"]["taskStatus"] == "running"
            task = await get_task(client, member, task_id)
            assert task["task"]["status"] == "running"
            assert task["task"]["completedAt"] is None
            assert task["turns"][0]["status"] == "running"
            assert task["turns"][0]["completedAt"] is None
            listed = (
                await client.get(
                    f"/api/tasks?workerId={worker['id']}&status=running", headers=member.headers
                )
            ).json()
            assert [t["id"] for t in listed["tasks"]] == [task_id]
        finally:
            model.gate.set()
        await wait_turn(client, member, task_id, {"completed"})
        finished = (await client.get(f"/api/workers/{worker['id']}", headers=member.headers)).json()
        assert (finished["status"], finished["running"]) == ("completed", False)
        assert finished["output_text"] == "ok"


class TestQueue:
    async def test_turns_past_the_concurrency_limit_wait_in_the_queue(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        member: Member,
        reconfigure: Callable[..., None],
    ) -> None:
        # The limit is given to DBOS when the queue is registered at launch, so the test works
        # with the configured one rather than reconfiguring it.
        limit = app.state.runtime.settings.turn_concurrency
        model = HeldModel()
        reconfigure(model=model, task_wait_seconds=0)
        worker = await new_worker(client, member)
        answers = await asyncio.gather(
            *(
                start(client, member, input=f"queued job {i}", workerId=worker["id"])
                for i in range(limit + 2)
            )
        )
        turn_ids = [a["metadata"]["turnId"] for a in answers]
        task_ids = [a["metadata"]["taskId"] for a in answers]
        assert all(a["running"] for a in answers)
        # Each answer describes the task that call started, not the worker's latest one.
        assert len(set(task_ids)) == len(set(turn_ids)) == limit + 2
        try:
            # Exactly `limit` turns reach the model; the others stay queued while they hold.
            await eventually(model.asked, lambda n: n >= limit, f"{limit} running turns")
            await asyncio.sleep(0.3)  # a few queue polls: nothing more may start
            assert len(model.instructions) == limit

            statuses = await DBOS.list_workflows_async(workflow_ids=turn_ids)
            assert {s.queue_name for s in statuses} == {TURN_QUEUE}
            by_status = {s.workflow_id: s.status for s in statuses}
            assert sorted(by_status.values()) == ["ENQUEUED"] * 2 + ["PENDING"] * limit
            queued = await DBOS.list_queued_workflows_async(
                queue_name=TURN_QUEUE, status="ENQUEUED"
            )
            waiting = [t for t in turn_ids if by_status[t] == "ENQUEUED"]
            assert set(waiting) <= {q.workflow_id for q in queued}

            # A queued turn: the task and its turn are pending, the worker says so.
            waiting_task = task_ids[turn_ids.index(waiting[0])]
            task = await get_task(client, member, waiting_task)
            assert task["task"]["status"] == "pending"
            assert task["turns"][0]["status"] == "pending"
            r = await client.get(f"/api/workers/{worker['id']}", headers=member.headers)
            assert r.json()["running"] is True
        finally:
            model.gate.set()
        for task_id in task_ids:
            await wait_turn(client, member, task_id, {"completed"})
        assert len(model.instructions) == limit + 2  # every turn asked the model once
        # DBOS records success just after the turn's rows say completed: wait for it.

        async def statuses() -> set[str]:
            return {s.status for s in await DBOS.list_workflows_async(workflow_ids=turn_ids)}

        await eventually(statuses, lambda found: found == {"SUCCESS"}, "every workflow to succeed")

    async def test_worker_state_while_its_turn_is_queued(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        member: Member,
        reconfigure: Callable[..., None],
    ) -> None:
        limit = app.state.runtime.settings.turn_concurrency
        model = HeldModel()
        async with full_queue(client, member, reconfigure, model, limit):
            worker = await new_worker(client, member)
            queued = await start(client, member, input="Wait your turn", workerId=worker["id"])
            await asyncio.sleep(0.3)
            assert len(model.instructions) == limit
            state = (
                await client.get(f"/api/workers/{worker['id']}", headers=member.headers)
            ).json()
            assert queued["status"] == state["status"] == "pending"
            assert queued["running"] is state["running"] is True
            assert state["metadata"]["taskStatus"] == "pending"
            assert await workflow_status(state["metadata"]["turnId"]) == "ENQUEUED"
        await wait_turn(client, member, queued["metadata"]["taskId"], {"completed"})


class TestAbort:
    async def test_archiving_aborts_the_running_turn(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        member: Member,
        reconfigure: Callable[..., None],
    ) -> None:
        worker, task_id, turn_id = await start_slow_turn(
            client, member, reconfigure, "Archive me midway"
        )

        r = await client.delete(f"/api/tasks/{task_id}", headers=member.headers)
        assert r.json() == {"archived": True}
        task = await get_task(client, member, task_id)
        assert task["task"]["status"] == "aborted"
        assert task["task"]["archived"] is True
        assert task["task"]["completedAt"] is not None
        (turn,) = task["turns"]
        assert turn["status"] == "aborted"
        assert turn["error"]["code"] == "aborted"
        assert "archived" in turn["error"]["message"]
        assert turn["completedAt"] is not None

        # Past the time the turn would have taken, the workflow has not overwritten the abort.
        await asyncio.sleep(SLOW_TURN_SECONDS + 1.0)
        assert await workflow_status(turn_id) == "CANCELLED"
        later = await get_task(client, member, task_id)
        assert later["task"]["status"] == "aborted"
        assert later["turns"][0]["status"] == "aborted"
        assert later["turns"][0]["outputText"] == ""
        state = (await client.get(f"/api/workers/{worker['id']}", headers=member.headers)).json()
        assert state["running"] is False
        assert state["status"] == "completed"
        assert state["error"]["code"] == "aborted"
        # A later turn cannot be added to an archived task.
        r = await client.post(
            "/api/tasks", json={"input": "more", "taskId": task_id}, headers=member.headers
        )
        assert r.status_code == 409

    async def test_archiving_aborts_a_queued_turn(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        member: Member,
        reconfigure: Callable[..., None],
    ) -> None:
        limit = app.state.runtime.settings.turn_concurrency
        model = HeldModel()
        async with full_queue(client, member, reconfigure, model, limit):
            queued = await start(client, member, input="Never to run")
            task_id = queued["metadata"]["taskId"]
            r = await client.delete(f"/api/tasks/{task_id}", headers=member.headers)
            assert r.json() == {"archived": True}
        await asyncio.sleep(0.3)
        assert len(model.instructions) == limit  # the archived turn never reached the model
        task = await get_task(client, member, task_id)
        assert task["task"]["status"] == "aborted"
        assert task["turns"][0]["status"] == "aborted"
        assert await workflow_status(queued["metadata"]["turnId"]) == "CANCELLED"

    async def test_a_finishing_workflow_does_not_overwrite_an_abort(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        member: Member,
        reconfigure: Callable[..., None],
    ) -> None:
        """The guard behind the cancellation: recording the end of an aborted turn is a no-op."""
        model = HeldModel()
        reconfigure(model=model, task_wait_seconds=0)
        answered = await start(client, member, input="Race the abort")
        task_id, turn_id = answered["metadata"]["taskId"], answered["metadata"]["turnId"]
        try:
            await eventually(model.asked, lambda n: n >= 1, "the model to be asked")
            db = app.state.runtime.db
            async with db.write() as w:
                assert await control.abort_turn(w, turn_id, "aborted by the test") == []
            async with db.write() as w:
                finished = await tasks.finish_turn(
                    w,
                    turn_id,
                    "completed",
                    {"output_text": "too late", "credits": 5},
                    only_from=("running",),
                    listeners=(),
                )
            assert finished is False
        finally:
            model.gate.set()  # the workflow itself now ends too, and must not win either
        await eventually(
            lambda: workflow_status(turn_id), lambda s: s in {"SUCCESS", "ERROR"}, "the workflow"
        )
        async with app.state.runtime.db.read() as r:
            turn = await tasks.turn(r, turn_id)
            task = await tasks.by_public_id(r, member.organization_id, task_id)
            assert turn is not None
            assert task is not None
            assert (turn.status, turn.output_text, turn.credits) == ("aborted", "", 0)
            assert (task.status, task.credits, task.active_turn_id) == ("aborted", 0, None)

    async def test_deleting_the_worker_aborts_its_running_turn(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        member: Member,
        reconfigure: Callable[..., None],
    ) -> None:
        worker, task_id, turn_id = await start_slow_turn(
            client, member, reconfigure, "Delete me midway"
        )

        r = await client.delete(f"/api/workers/{worker['id']}", headers=member.headers)
        assert r.json() == {"deleted": True}
        # The worker and its tasks now answer 404; the rows are kept and say what happened.
        assert (
            await client.get(f"/api/tasks/{task_id}", headers=member.headers)
        ).status_code == 404

        async def turn_row() -> str | None:
            async with app.state.runtime.db.read() as r:
                turn = await tasks.turn(r, turn_id)
                return turn.status if turn else None

        right_after = await turn_row()
        # Past the time the turn would have taken (also so it never outlives the test).
        await asyncio.sleep(SLOW_TURN_SECONDS + 1.0)
        assert right_after == "aborted"
        assert await turn_row() == "aborted"
        assert await workflow_status(turn_id) == "CANCELLED"
        async with app.state.runtime.db.read() as r:
            task = await tasks.by_public_id(r, member.organization_id, task_id)
            assert task is not None
            assert task.status == "aborted"
            assert task.active_turn_id is None


class TestInstructionsVersion:
    async def test_a_task_keeps_the_instructions_it_started_with(
        self, client: httpx.AsyncClient, member: Member, reconfigure: Callable[..., None]
    ) -> None:
        model = HeldModel()
        reconfigure(model=model, task_wait_seconds=0)
        worker = await new_worker(client, member, instructions="Version one: bark twice.")
        task_id = f"versions-{member.user_id}"
        await start(client, member, input="First turn", workerId=worker["id"], taskId=task_id)
        try:
            await eventually(model.asked, lambda n: n >= 1, "the first turn to run")
            r = await client.patch(
                f"/api/workers/{worker['id']}",
                json={"instructions": "Version two: howl."},
                headers=member.headers,
            )
            assert r.status_code == 200, r.text
            assert r.json()["instructionsVersion"] == 2
        finally:
            model.gate.set()
        await wait_turn(client, member, task_id, {"completed"})

        reconfigure(task_wait_seconds=30)
        follow_up = await start(client, member, input="Second turn", taskId=task_id)
        assert follow_up["status"] == "completed", follow_up
        fresh = await start(client, member, input="A new task", workerId=worker["id"])
        assert fresh["status"] == "completed", fresh

        first, second, third = model.instructions
        assert "Version one: bark twice." in (first or "")
        assert "Version one: bark twice." in (second or "")  # same task: the version it began on
        assert "Version two" not in (second or "")
        assert "Version two: howl." in (third or "")  # a task started after the PATCH
        assert "Version one" not in (third or "")


async def test_a_turn_that_ends_without_the_in_process_signal_is_found_by_polling(
    client: httpx.AsyncClient, member: Member, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As when another process runs the turn: the waiting POST polls DBOS for its result."""
    monkeypatch.setattr(waiters, "notify", lambda turn_id: None)
    r = await post_task(client, member, input="Say hello.")
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["running"]) == ("completed", False)
