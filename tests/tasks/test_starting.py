"""One typed way to start a turn: `TurnRequest` and `record_turn`, whoever starts it."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from kennel.api.errors import NotFound
from kennel.auth import Caller
from kennel.tasks import control
from kennel.tasks.schemas import TaskCreate
from kennel.tasks.starting import (
    StartedTurn,
    TaskExists,
    TurnInFlight,
    TurnRequest,
    Upload,
    record_turn,
)
from tests.factories import Member
from tests.factories.workers import new_worker_id


async def record(app: FastAPI, request: TurnRequest) -> StartedTurn:
    """The turn's rows, not queued: nothing runs it (`abort` ends it)."""
    rt = app.state.runtime
    async with rt.db.write() as w:
        return await record_turn(w, rt, request)


async def abort(app: FastAPI, turn_id: str) -> None:
    async with app.state.runtime.db.write() as w:
        await control.abort_turn(w, turn_id, "The test is over.")


def test_from_create_takes_the_api_fields() -> None:
    caller = Caller("usr_a", "org_a", "member", "key_a")
    data = TaskCreate.model_validate(
        {"input": "Hi", "workerId": "wrk_a", "taskId": "t-1", "budget": "low", "stream": True}
    )
    uploads = [Upload("a.txt", b"a")]
    turn = TurnRequest.from_create(data, caller, origin="ui", uploads=uploads)
    assert turn == TurnRequest(
        origin="ui",
        caller=caller,
        input="Hi",
        worker_id="wrk_a",
        task_id="t-1",
        budget="low",
        uploads=uploads,
    )


def test_a_starter_without_a_key_acts_as_a_member() -> None:
    caller = Caller.acting_for("usr_a", "org_a", via="schedule:sch_a")
    assert caller == Caller("usr_a", "org_a", "member", "schedule:sch_a")


class TestRecordTurn:
    async def test_a_new_task_with_fixed_ids_trigger_and_files(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        turn = TurnRequest(
            origin="schedule",
            caller=member.caller,
            input="First line\nand more",
            worker_id=worker_id,
            task_id=f"fixed-{member.user_id}",
            budget="high",
            uploads=[Upload("notes/a.txt", b"a"), Upload("notes/a.txt", b"b")],
            trigger={"scheduleId": "sch_x"},
            turn_id=f"trn_fixed{member.user_id[4:]}",
        )
        started = await record(app, turn)
        try:
            assert started.task.public_id == turn.task_id
            assert started.task.triggered_by == "schedule"
            assert started.task.trigger == {"scheduleId": "sch_x"}
            assert started.task.title == "First line"
            assert started.turn.id == turn.turn_id
            assert started.turn.budget == "high"
            assert {p: u.data for p, u in started.uploads.items()} == {"notes/a.txt": b"b"}
        finally:
            await abort(app, started.turn.id)

    async def test_a_follow_up_while_a_turn_is_in_flight_is_refused(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        first = TurnRequest(
            origin="api", caller=member.caller, input="One", worker_id=worker_id, task_id=None
        )
        started = await record(app, first)
        try:
            follow_up = TurnRequest(
                origin="email",
                caller=member.caller,
                input="Two",
                task_id=started.task.public_id,
            )
            with pytest.raises(TurnInFlight):
                await record(app, follow_up)
        finally:
            await abort(app, started.turn.id)

    async def test_new_task_only_refuses_a_task_that_exists(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        task_id = f"once-{member.user_id}"
        started = await record(
            app,
            TurnRequest(
                origin="api", caller=member.caller, input="A", worker_id=worker_id, task_id=task_id
            ),
        )
        await abort(app, started.turn.id)  # ended: a follow-up would be welcome
        again = TurnRequest(
            origin="schedule",
            caller=member.caller,
            input="A",
            worker_id=worker_id,
            task_id=task_id,
            new_task_only=True,
        )
        with pytest.raises(TaskExists):
            await record(app, again)

    async def test_new_task_only_names_a_worker_gone_first(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        turn = TurnRequest(
            origin="schedule",
            caller=member.caller,
            input="A",
            worker_id="wrk_gone",
            task_id=f"gone-{member.user_id}",
            new_task_only=True,
        )
        with pytest.raises(NotFound):
            await record(app, turn)
