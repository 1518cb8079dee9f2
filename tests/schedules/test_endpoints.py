"""The Schedules API against the real app: validation, listing, firing, pausing, history."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from kennel.agents.offline_model import OfflineModel
from kennel.core.timestamps import iso_z
from kennel.schedules.dispatcher import fire_due
from tests.factories import Member, make_member
from tests.factories.polling import eventually
from tests.factories.tasks import tasks_of
from tests.factories.workers import new_worker_id


def later(seconds: float) -> str:
    return iso_z(datetime.now(UTC) + timedelta(seconds=seconds))


async def schedule(
    client: httpx.AsyncClient, member: Member, worker_id: str, **body: Any
) -> httpx.Response:
    body.setdefault("input", "Check the kennel")
    return await client.post(
        f"/api/workers/{worker_id}/schedules", json=body, headers=member.headers
    )


class TestValidation:
    @pytest.mark.parametrize(
        ("when", "param"),
        [
            ({"type": "scheduled", "date": "2026-13-01T00:00:00Z"}, "when.date"),
            ({"type": "scheduled", "date": "2030-01-01T00:00:00"}, "when.date"),  # no offset
            ({"type": "scheduled", "date": "2020-01-01T00:00:00Z"}, "when.date"),  # past
            ({"type": "delayed", "delayInSeconds": 0}, "when.delayInSeconds"),
            ({"type": "delayed", "delayInSeconds": 1.5}, "when.delayInSeconds"),
            ({"type": "delayed", "delayInSeconds": "5"}, "when.delayInSeconds"),
            ({"type": "delayed", "delayInSeconds": 31_536_001}, "when.delayInSeconds"),
            ({"type": "interval", "intervalSeconds": 59}, "when.intervalSeconds"),
            ({"type": "interval", "intervalSeconds": 31_536_001}, "when.intervalSeconds"),
            ({"type": "cron", "cron": "not cron"}, "when.cron"),
            ({"type": "cron", "cron": "0 * * * * *"}, "when.cron"),
            ({"type": "cron", "cron": "0 9 * * *", "timezone": "Mars/Base"}, "when.timezone"),
            ({"type": "sometimes"}, "when.type"),
            ({"delayInSeconds": 5}, "when.type"),
            ({"type": "delayed", "delayInSeconds": 5, "extra": 1}, "when.extra"),
        ],
    )
    async def test_bad_when_is_400_naming_the_field(
        self, client: httpx.AsyncClient, member: Member, when: dict[str, Any], param: str
    ) -> None:
        worker_id = await new_worker_id(client, member)
        r = await schedule(client, member, worker_id, when=when)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == param

    @pytest.mark.parametrize(
        ("body", "param"),
        [
            ({"input": ""}, "input"),
            ({"input": "x" * 100_001}, "input"),
            ({"budget": "huge"}, "budget"),
        ],
    )
    async def test_bad_input_and_budget(
        self, client: httpx.AsyncClient, member: Member, body: dict[str, Any], param: str
    ) -> None:
        worker_id = await new_worker_id(client, member)
        r = await schedule(
            client, member, worker_id, when={"type": "delayed", "delayInSeconds": 60}, **body
        )
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == param

    async def test_too_many_schedules_is_409(
        self, client: httpx.AsyncClient, member: Member, reconfigure: Callable[..., None]
    ) -> None:
        reconfigure(max_schedules_per_worker=2)
        worker_id = await new_worker_id(client, member)
        when = {"type": "delayed", "delayInSeconds": 3600}
        for _ in range(2):
            assert (await schedule(client, member, worker_id, when=when)).status_code == 201
        r = await schedule(client, member, worker_id, when=when)
        assert r.status_code == 409
        assert "KENNEL_MAX_SCHEDULES_PER_WORKER" in r.json()["error"]["message"]


class TestList:
    async def test_sorted_by_next_run_with_defaults(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        made = [
            (await schedule(client, member, worker_id, when=when)).json()
            for when in (
                {"type": "delayed", "delayInSeconds": 7200},
                {"type": "scheduled", "date": later(3600)},
                {"type": "interval", "intervalSeconds": 600},
                {"type": "cron", "cron": "@yearly"},
            )
        ]
        assert all(m["budget"] == "standard" for m in made)
        listed = (
            await client.get(f"/api/workers/{worker_id}/schedules", headers=member.headers)
        ).json()
        assert listed["workerId"] == worker_id
        assert listed["timezone"] == "UTC"
        order = [s["nextRunAt"] for s in listed["schedules"]]
        assert order == sorted(order)
        assert [s["type"] for s in listed["schedules"]] == [
            "interval",
            "scheduled",
            "delayed",
            "cron",
        ]
        assert {s["id"] for s in listed["schedules"]} == {m["id"] for m in made}

    async def test_cron_next_run_in_its_zone_and_the_five_upcoming(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        r = await schedule(
            client,
            member,
            worker_id,
            when={"type": "cron", "cron": "30 9 * * *", "timezone": "Asia/Tokyo"},
        )
        created = r.json()
        assert created["timezone"] == "Asia/Tokyo"
        next_run = datetime.fromisoformat(created["nextRunAt"].replace("Z", "+00:00"))
        assert (next_run.hour, next_run.minute) == (0, 30)  # 09:30 in Tokyo is 00:30 UTC
        assert timedelta(0) < next_run - datetime.now(UTC) <= timedelta(days=1)
        detail = (
            await client.get(
                f"/api/workers/{worker_id}/schedules/{created['id']}", headers=member.headers
            )
        ).json()
        assert len(detail["upcoming"]) == 5
        assert detail["upcoming"][0] == created["nextRunAt"]
        days = [datetime.fromisoformat(u.replace("Z", "+00:00")) for u in detail["upcoming"]]
        assert all(b - a == timedelta(days=1) for a, b in itertools.pairwise(days))

    async def test_private_workers_and_other_organizations(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        colleague = await make_member(app, organization=member.organization)
        stranger = await make_member(app)
        private = await new_worker_id(client, member, visibility="private")
        made = (
            await schedule(client, member, private, when={"type": "delayed", "delayInSeconds": 600})
        ).json()
        for who in (colleague, stranger):
            for method, path in (
                ("GET", f"/api/workers/{private}/schedules"),
                ("GET", f"/api/workers/{private}/schedules/{made['id']}"),
                ("DELETE", f"/api/workers/{private}/schedules/{made['id']}"),
            ):
                r = await client.request(method, path, headers=who.headers)
                assert r.status_code == 404, (who, path)


class TestFiring:
    async def test_delayed_scheduled_and_interval_really_fire(
        self, client: httpx.AsyncClient, member: Member, reconfigure: Callable[..., None]
    ) -> None:
        reconfigure(min_interval_seconds=1)
        worker_id = await new_worker_id(client, member)
        delayed = (
            await schedule(client, member, worker_id, when={"type": "delayed", "delayInSeconds": 1})
        ).json()
        once = (
            await schedule(client, member, worker_id, when={"type": "scheduled", "date": later(1)})
        ).json()
        every = (
            await schedule(
                client, member, worker_id, when={"type": "interval", "intervalSeconds": 1}
            )
        ).json()

        async def three_kinds() -> list[dict] | None:
            found = await tasks_of(client, member, worker_id)
            ids = {t["metadata"].get("scheduleId") for t in found}
            return found if {delayed["id"], once["id"], every["id"]} <= ids else None

        found = await eventually(three_kinds)
        for task in found:
            assert task["triggeredBy"] == "schedule"
            assert task["metadata"]["dueAt"].endswith("Z")
            assert task["id"] == f"{task['metadata']['scheduleId']}:" + task["id"].split(":", 1)[1]
        listed = (
            await client.get(f"/api/workers/{worker_id}/schedules", headers=member.headers)
        ).json()["schedules"]
        assert [s["id"] for s in listed] == [every["id"]]  # the one-shots left the list
        worker = (await client.get(f"/api/workers/{worker_id}", headers=member.headers)).json()
        assert worker["metadata"]["triggeredBy"] == "schedule"
        runs = (
            await client.get(
                f"/api/workers/{worker_id}/schedules/{delayed['id']}/runs", headers=member.headers
            )
        ).json()
        (run,) = runs["runs"]
        assert (run["outcome"], run["missedCount"]) == ("started", 0)  # on time: folds nothing
        assert run["dueAt"] == delayed["nextRunAt"]
        assert run["taskId"] in {t["id"] for t in found}
        await client.delete(
            f"/api/workers/{worker_id}/schedules/{every['id']}", headers=member.headers
        )

    async def test_a_missed_recurring_schedule_fires_once_then_keeps_its_cadence(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        member: Member,
        reconfigure: Callable[..., None],
    ) -> None:
        """As after downtime: eleven ticks passed, one firing stands for them all, and its run
        says how many it folded in and which process fired it."""
        reconfigure(executor_id="kennel-b")
        worker_id = await new_worker_id(client, member)
        made = (
            await schedule(
                client, member, worker_id, when={"type": "interval", "intervalSeconds": 3600}
            )
        ).json()
        rt = app.state.runtime
        due = datetime.fromisoformat(made["nextRunAt"].replace("Z", "+00:00"))
        assert await fire_due(rt, due + timedelta(hours=10, minutes=30)) >= 1
        runs = (
            await client.get(
                f"/api/workers/{worker_id}/schedules/{made['id']}/runs", headers=member.headers
            )
        ).json()["runs"]
        assert [(r["outcome"], r["missedCount"], r["firedBy"]) for r in runs] == [
            ("caught_up", 10, "kennel-b")  # due, then ten more up to due + 10 h
        ]
        listed = (
            await client.get(
                f"/api/workers/{worker_id}/schedules/{made['id']}", headers=member.headers
            )
        ).json()
        assert listed["nextRunAt"] == iso_z(due + timedelta(hours=11))  # anchor + k·N, no drift

    async def test_overlap_is_skipped_and_recorded(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        member: Member,
        reconfigure: Callable[..., None],
    ) -> None:
        reconfigure(model=OfflineModel(delay_seconds=3), min_interval_seconds=1)
        worker_id = await new_worker_id(client, member)
        made = (
            await schedule(
                client, member, worker_id, when={"type": "interval", "intervalSeconds": 1}
            )
        ).json()
        url = f"/api/workers/{worker_id}/schedules/{made['id']}/runs"

        async def a_skip() -> list[dict] | None:
            runs = (await client.get(url, headers=member.headers)).json()["runs"]
            return runs if any(r["outcome"] == "skipped_overlap" for r in runs) else None

        runs = await eventually(a_skip, timeout=10)
        await client.delete(
            f"/api/workers/{worker_id}/schedules/{made['id']}", headers=member.headers
        )
        started = [r for r in runs if r["outcome"] == "started"]
        assert len(started) == 1  # the only one that ran; the others found it running
        assert {r["firedBy"] for r in runs} == {app.state.runtime.settings.executor_id}
        assert all(r["taskId"] is None for r in runs if r["outcome"] == "skipped_overlap")

    async def test_pause_resume_and_run_now(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        member: Member,
        reconfigure: Callable[..., None],
    ) -> None:
        reconfigure(min_interval_seconds=1)
        worker_id = await new_worker_id(client, member)
        made = (
            await schedule(
                client, member, worker_id, when={"type": "interval", "intervalSeconds": 1}
            )
        ).json()
        base = f"/api/workers/{worker_id}/schedules/{made['id']}"
        paused = (await client.patch(base, json={"paused": True}, headers=member.headers)).json()
        assert paused["paused"] is True
        await asyncio.sleep(2.5)
        assert await tasks_of(client, member, worker_id) == []  # paused: nothing fired
        manual = (await client.post(f"{base}/run", headers=member.headers)).json()
        assert (manual["outcome"], manual["missedCount"]) == ("manual", 0)
        assert manual["firedBy"] == app.state.runtime.settings.executor_id
        resumed = (await client.patch(base, json={"paused": False}, headers=member.headers)).json()
        assert resumed["paused"] is False
        resumed_at = datetime.fromisoformat(resumed["nextRunAt"].replace("Z", "+00:00"))
        assert resumed_at > datetime.now(UTC) - timedelta(seconds=1)  # nothing replayed

        async def fired_after_resume() -> bool:
            runs = (await client.get(f"{base}/runs", headers=member.headers)).json()["runs"]
            return any(r["outcome"] in ("started", "caught_up") for r in runs)

        await eventually(fired_after_resume)
        assert (await client.delete(base, headers=member.headers)).json() == {"cancelled": True}
        assert (await client.get(base, headers=member.headers)).status_code == 404
        runs = (await client.get(f"{base}/runs", headers=member.headers)).json()
        assert runs["runs"][-1]["outcome"] == "manual"  # oldest last
        assert runs["runs"][-1]["taskId"] == manual["taskId"]
        assert runs["runs"][-1]["taskStatus"] in ("pending", "running", "completed")

    async def test_deleting_the_worker_cancels_its_schedules(
        self, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        made = (
            await schedule(client, member, worker_id, when={"type": "delayed", "delayInSeconds": 1})
        ).json()
        await client.delete(f"/api/workers/{worker_id}", headers=member.headers)
        await asyncio.sleep(1.8)
        r = await client.get(f"/api/tasks?workerId={worker_id}", headers=member.headers)
        assert r.json()["tasks"] == []
        gone = await client.get(
            f"/api/workers/{worker_id}/schedules/{made['id']}", headers=member.headers
        )
        assert gone.status_code == 404
