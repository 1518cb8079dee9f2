"""The dispatcher: a firing is one task and one turn however often it is attempted."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import httpx
from fastapi import FastAPI

from kennel.schedules import repository as schedules_repo
from kennel.schedules.dispatcher import fire_due, firing_task_id, firing_turn_id
from tests.factories import Member
from tests.factories.polling import eventually
from tests.factories.tasks import post_task, tasks_of
from tests.factories.workers import new_worker_id


async def hourly_schedule(client: httpx.AsyncClient, member: Member, worker_id: str) -> str:
    r = await client.post(
        f"/api/workers/{worker_id}/schedules",
        json={"input": "Walk the dog", "when": {"type": "interval", "intervalSeconds": 3600}},
        headers=member.headers,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def make_due(app: FastAPI, schedule_id: str, due: datetime) -> None:
    async with app.state.runtime.db.write() as w:
        await schedules_repo.set_next(w, schedule_id, due, due)


async def runs_of(
    client: httpx.AsyncClient, member: Member, worker_id: str, schedule_id: str
) -> list[dict]:
    r = await client.get(
        f"/api/workers/{worker_id}/schedules/{schedule_id}/runs", headers=member.headers
    )
    assert r.status_code == 200, r.text
    return list(r.json()["runs"])


class TestFiringIds:
    def test_derived_from_the_schedule_and_the_due_time_only(self) -> None:
        due = datetime(2026, 12, 7, 9, 30, 0, 123456, tzinfo=UTC)
        assert firing_task_id("sch_a", due) == "sch_a:20261207T093000.123Z"
        assert firing_turn_id("sch_a", due) == firing_turn_id("sch_a", due)
        assert firing_turn_id("sch_a", due) != firing_turn_id("sch_b", due)
        assert re.fullmatch(r"trn_[0-9a-hjkmnp-tv-z]{26}", firing_turn_id("sch_a", due))


class TestFireDue:
    async def test_a_due_time_fires_once_however_often_it_is_attempted(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        schedule_id = await hourly_schedule(client, member, worker_id)
        due = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
        await make_due(app, schedule_id, due)
        rt = app.state.runtime
        # Two attempts at once, as two processes would (the server's own dispatcher may be a
        # third): the claim moves the schedule on, so one of them fires it.
        await asyncio.gather(fire_due(rt, datetime.now(UTC)), fire_due(rt, datetime.now(UTC)))
        (task,) = await eventually(lambda: tasks_of(client, member, worker_id))
        assert task["id"] == firing_task_id(schedule_id, due)
        assert task["triggeredBy"] == "schedule"
        assert task["metadata"]["scheduleId"] == schedule_id
        (run,) = await runs_of(client, member, worker_id, schedule_id)
        assert run["outcome"] == "started"
        assert run["firedBy"] == rt.settings.executor_id
        assert run["taskId"] == task["id"]

    async def test_a_task_id_taken_already_is_a_failed_firing_not_a_follow_up(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        schedule_id = await hourly_schedule(client, member, worker_id)
        due = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
        taken = firing_task_id(schedule_id, due)
        r = await post_task(client, member, input="Mine", workerId=worker_id, taskId=taken)
        assert r.status_code == 200, r.text
        await make_due(app, schedule_id, due)
        await fire_due(app.state.runtime, datetime.now(UTC))
        (run,) = await eventually(lambda: runs_of(client, member, worker_id, schedule_id))
        assert run["outcome"] == "failed"
        assert run["error"] == "This due time has been fired already."
        (task,) = await tasks_of(client, member, worker_id)
        assert task["totals"]["turnCount"] == 1  # no second turn on the task

    async def test_a_deleted_worker_cancels_its_schedules(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        schedule_id = await hourly_schedule(client, member, worker_id)
        r = await client.delete(f"/api/workers/{worker_id}", headers=member.headers)
        assert r.status_code == 200, r.text
        async with app.state.runtime.db.read() as r_:
            row = await schedules_repo.schedule(r_, worker_id, schedule_id, finished=True)
        assert row is not None
        assert row.cancelled_at is not None
        assert row.next_run_at is None
