"""Schedules through the official SDK in strict mode, and firing across restarts, SIGKILL and
two server processes: every due time fires exactly once."""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import handinger
import httpx
import pytest

from tests.conftest import BACKENDS, POSTGRES_ENV, fresh_database
from tests.e2e.conftest import LiveServer, start_live_server
from tests.e2e.test_crash_recovery import sigkill
from tests.factories.polling import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp(f"schedules-{request.param}")
    with (
        fresh_database(request.param, workdir) as database_url,
        start_live_server(
            workdir,
            database_url,
            backend=request.param,
            extra_env={"KENNEL_MIN_INTERVAL_SECONDS": "2"},
        ) as live,
    ):
        yield live


def tasks_of(http: httpx.Client, worker_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    page = 1
    while True:
        body = http.get("/api/tasks", params={"workerId": worker_id, "page": page}).json()
        found += body["tasks"]
        if page >= body["pageCount"]:
            return found
        page += 1


def test_every_endpoint_through_the_sdk(server: LiveServer) -> None:
    with server.sdk() as sdk:
        worker = sdk.workers.create(title="Scheduled")
        date = datetime.now(UTC) + timedelta(hours=1)
        created = [
            sdk.workers.schedules.create(
                worker.id, input="Once", when={"type": "scheduled", "date": date}
            ),
            sdk.workers.schedules.create(
                worker.id,
                input="Later",
                when={"type": "delayed", "delay_in_seconds": 2},
                budget="low",
            ),
            sdk.workers.schedules.create(
                worker.id, input="Daily", when={"type": "cron", "cron": "0 6 * * *"}
            ),
            sdk.workers.schedules.create(
                worker.id, input="Often", when={"type": "interval", "interval_seconds": 3600}
            ),
        ]
        assert [s.type for s in created] == ["scheduled", "delayed", "cron", "interval"]
        assert created[0].next_run_at == date.replace(microsecond=date.microsecond // 1000 * 1000)
        assert created[1].budget == "low"
        listed = sdk.workers.schedules.list(worker.id)
        assert listed.worker_id == worker.id
        assert next(s.id for s in listed.schedules) == created[1].id  # the soonest first
        # The delayed one fires within seconds, through the same path as POST /api/tasks.
        with server.http(server.api_key) as http:
            (task,) = wait_until("the delayed firing", lambda: tasks_of(http, worker.id))
        assert task["triggeredBy"] == "schedule"
        assert task["metadata"]["scheduleId"] == created[1].id
        assert sdk.tasks.retrieve(task["id"]).task.triggered_by == "schedule"
        remaining = {s.id for s in sdk.workers.schedules.list(worker.id).schedules}
        assert remaining == {created[0].id, created[2].id, created[3].id}
        assert sdk.workers.schedules.cancel(created[3].id, worker_id=worker.id).cancelled is True
        with pytest.raises(handinger.NotFoundError):
            sdk.workers.schedules.cancel(created[3].id, worker_id=worker.id)
        with pytest.raises(handinger.NotFoundError):
            sdk.workers.schedules.list("wrk_missing")


@pytest.mark.parametrize(
    ("when", "param"),
    [
        ({"type": "scheduled", "date": "2001-01-01T00:00:00Z"}, "when.date"),
        ({"type": "delayed", "delay_in_seconds": 0}, "when.delayInSeconds"),
        ({"type": "interval", "interval_seconds": 1}, "when.intervalSeconds"),
        ({"type": "cron", "cron": "* * *"}, "when.cron"),
    ],
)
def test_validation_errors_through_the_sdk(server: LiveServer, when: Any, param: str) -> None:
    with server.sdk() as sdk:
        worker = sdk.workers.create()
        with pytest.raises(handinger.BadRequestError) as info:
            sdk.workers.schedules.create(worker.id, input="x", when=when)
        assert info.value.body["error"]["param"] == param  # type: ignore[index]  # untyped body


def _make(http: httpx.Client, worker_id: str, when: dict[str, Any]) -> dict[str, Any]:
    r = http.post(f"/api/workers/{worker_id}/schedules", json={"input": "Tick", "when": when})
    assert r.status_code == 201, r.text
    return r.json()


def _make_many(http: httpx.Client, worker_id: str, whens: list[dict[str, Any]]) -> list[str]:
    """The ids of new schedules, made eight at a time: made one by one, a few hundred took
    longer than the seconds until their due time on a slow machine (a date in the past).

    Each thread has a client of its own: eight threads on one client's connection pool once
    failed under CI's load with 'Bad file descriptor' on a pooled connection."""
    local = threading.local()
    clients: list[httpx.Client] = []

    def make(when: dict[str, Any]) -> str:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(
                base_url=http.base_url, headers=http.headers, timeout=http.timeout
            )
            clients.append(client)
        return str(_make(client, worker_id, when)["id"])

    try:
        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(make, whens))
    finally:
        for client in clients:
            client.close()


def _runs(http: httpx.Client, worker_id: str, schedule_id: str) -> list[dict[str, Any]]:
    r = http.get(f"/api/workers/{worker_id}/schedules/{schedule_id}/runs")
    assert r.status_code == 200, r.text
    return r.json()["runs"]


def test_downtime_fires_the_missed_one_shot_once_and_each_recurring_schedule_once(
    empty_database_url: str, tmp_path: Path
) -> None:
    env = {"KENNEL_MIN_INTERVAL_SECONDS": "2", "KENNEL_EXECUTOR_ID": "downtime-test"}
    workdir = tmp_path / "server"
    with start_live_server(workdir, empty_database_url, extra_env=env) as first:
        key = first.api_key
        with first.http(key) as http:
            worker_id = http.post("/api/workers", json={"title": "Down"}).json()["id"]
            soon = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
            one_shot = _make(http, worker_id, {"type": "scheduled", "date": soon})
            interval = _make(http, worker_id, {"type": "interval", "intervalSeconds": 2})
        # Stopped at once: the one-shot and several ticks of the interval fall in the downtime.
    time.sleep(9)
    (workdir / "server.log").rename(workdir / "first-server.log")
    restarted_at = datetime.now(UTC)
    with start_live_server(workdir, empty_database_url, extra_env=env) as second:
        with second.http(key) as http:
            wait_until(
                "the catch-up firings", lambda: len(_runs(http, worker_id, interval["id"])) >= 2
            )
            shot_runs = _runs(http, worker_id, one_shot["id"])
            interval_runs = _runs(http, worker_id, interval["id"])
            http.delete(f"/api/workers/{worker_id}/schedules/{interval['id']}")
    assert [r["outcome"] for r in shot_runs] == ["caught_up"]
    missed = [r for r in interval_runs if _at(r["dueAt"]) < restarted_at]
    assert [r["outcome"] for r in missed] == ["caught_up"]  # once, not once per missed tick
    anchor = _at(interval["nextRunAt"]) - timedelta(seconds=2)
    for run in interval_runs:  # all due times on the anchor's cadence
        assert (_at(run["dueAt"]) - anchor).total_seconds() % 2 == pytest.approx(0, abs=0.002)


def _at(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def test_sigkill_while_firing_a_batch_fires_each_due_time_once(
    empty_database_url: str, tmp_path: Path
) -> None:
    env = {
        "KENNEL_EXECUTOR_ID": "batch-kill-test",
        "KENNEL_TASK_WAIT_SECONDS": "0",
        "KENNEL_MAX_SCHEDULES_PER_WORKER": "1000",
    }
    workdir = tmp_path / "server"
    count = 300
    with start_live_server(workdir, empty_database_url, extra_env=env) as first:
        key = first.api_key
        with first.http(key) as http:
            worker_id = http.post("/api/workers", json={"title": "Batch"}).json()["id"]
            # 300 schedules are made in 2-4 s on a quiet machine; CI's load once took longer.
            due = (datetime.now(UTC) + timedelta(seconds=10)).isoformat()
            made = _make_many(http, worker_id, [{"type": "scheduled", "date": due}] * count)
            wait_until(
                "the first firings",
                lambda: (
                    http.get("/api/tasks", params={"workerId": worker_id}).json()["totalCount"] > 0
                ),
                timeout=20,
            )
        sigkill(first)
    (workdir / "server.log").rename(workdir / "first-server.log")
    with start_live_server(workdir, empty_database_url, extra_env=env) as second:
        with second.http(key) as http:
            found = wait_until(
                "every firing",
                lambda: len(tasks_of(http, worker_id)) >= count,
            )
            time.sleep(1)
            found = tasks_of(http, worker_id)
    per_schedule = collections.Counter(t["metadata"]["scheduleId"] for t in found)
    assert set(per_schedule) == set(made)
    assert set(per_schedule.values()) == {1}


def test_two_processes_fire_each_due_time_exactly_once(tmp_path: Path) -> None:
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"{POSTGRES_ENV} is not set: two processes need PostgreSQL")
    count = 100
    with fresh_database("postgresql", tmp_path) as database_url:
        with (
            start_live_server(
                tmp_path / "a",
                database_url,
                extra_env={
                    "KENNEL_EXECUTOR_ID": "process-a",
                    "KENNEL_MAX_SCHEDULES_PER_WORKER": "1000",
                },
            ) as a,
            start_live_server(
                tmp_path / "b",
                database_url,
                extra_env={
                    "KENNEL_EXECUTOR_ID": "process-b",
                    "KENNEL_DATA_DIR": str(tmp_path / "a" / "data"),
                },
            ) as b,
        ):
            with a.http(a.api_key) as http:
                worker_id = http.post("/api/workers", json={"title": "Shared"}).json()["id"]
                # Ten seconds ahead: two servers starting on two busy cores once took more
                # than four to make the hundred (a date in the past is refused).
                base = datetime.now(UTC) + timedelta(seconds=10)
                made = _make_many(
                    http,
                    worker_id,
                    [
                        {
                            "type": "scheduled",
                            "date": (base + timedelta(milliseconds=10 * i)).isoformat(),
                        }
                        for i in range(count)
                    ],
                )
                found = wait_until(
                    "every firing",
                    lambda: len(tasks_of(http, worker_id)) >= count,
                    timeout=60,
                )
                time.sleep(2)  # a second firing of any due time would have come by now
                found = tasks_of(http, worker_id)
            assert b.process.poll() is None
    per_schedule = collections.Counter(t["metadata"]["scheduleId"] for t in found)
    assert set(per_schedule) == set(made)
    assert set(per_schedule.values()) == {1}
