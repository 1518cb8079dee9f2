"""Passing database faults end no turn and lose no request (issue 25, items 4 and 5).

- A request whose turn committed but could not be queued answers with the task it wrote, and
  the sweep queues the turn without a restart.
- A turn whose model had answered while the database was locked past Kennel's wait (SQLite),
  or while its connections were being dropped (PostgreSQL), still ends `completed`: its start
  and end records are retried until the fault passes.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import exc as sa_exc

from kennel.agents.offline_model import OfflineModel
from kennel.db import sqlite as sqlite_db
from kennel.tasks import starting, workflows
from tests.factories import Member
from tests.factories.polling import eventually
from tests.factories.tasks import post_task
from tests.factories.workers import new_worker_id


async def _task(client: httpx.AsyncClient, member: Member, task_id: str) -> dict[str, Any]:
    r = await client.get(f"/api/tasks/{task_id}", headers=member.headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _ended(body: dict[str, Any]) -> bool:
    return body["task"]["status"] not in ("pending", "running")


async def test_a_turn_queued_after_a_fault_is_answered_and_swept(
    app: FastAPI,
    client: httpx.AsyncClient,
    member: Member,
    reconfigure: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reconfigure(task_wait_seconds=0)
    worker_id = await new_worker_id(client, member)
    real = starting.turn_context
    failures = []

    async def failing_once(*args: Any, **kwargs: Any) -> Any:
        if not failures:
            failures.append(1)
            raise sa_exc.OperationalError("SELECT", None, ConnectionResetError("dropped"))
        return await real(*args, **kwargs)

    monkeypatch.setattr(starting, "turn_context", failing_once)
    r = await post_task(client, member, input="Count the dogs", workerId=worker_id)
    # The task was written: the answer says so (not a 500 that a retry would duplicate).
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["running"] is True
    task_id = body["metadata"]["taskId"]
    assert failures == [1]
    assert (await _task(client, member, task_id))["task"]["status"] == "pending"

    # The heartbeat's sweep (run here at once) queues it: no restart needed.
    queued = await starting.queue_stranded_turns(app.state.runtime, grace=timedelta(0))
    assert queued == 1
    done = await eventually(lambda: _task(client, member, task_id), _ended, "the swept turn")
    assert done["task"]["status"] == "completed", done
    assert await starting.queue_stranded_turns(app.state.runtime, grace=timedelta(0)) == 0
    listed = await client.get("/api/tasks", params={"workerId": worker_id}, headers=member.headers)
    assert listed.json()["totalCount"] == 1


async def test_a_turn_outlives_a_write_lock_held_past_the_busy_timeout(
    client: httpx.AsyncClient,
    member: Member,
    database_url: str,
    reconfigure: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another process takes SQLite's write lock just as the turn's end is to be recorded
    (after DBOS recorded the model's answer), and holds it ten times Kennel's wait."""
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's write lock")
    reconfigure(task_wait_seconds=0)
    monkeypatch.setattr(sqlite_db, "_BUSY_TIMEOUT_SECONDS", 0.3)
    holder = sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=0)
    held: list[float] = []
    real_record_outcome = workflows._record_outcome

    async def record_outcome_under_a_held_lock(*args: Any, **kwargs: Any) -> Any:
        if not held:
            holder.execute("BEGIN IMMEDIATE")
            held.append(time.monotonic())
            asyncio.get_running_loop().call_later(3, holder.rollback)
        return await real_record_outcome(*args, **kwargs)

    monkeypatch.setattr(workflows, "_record_outcome", record_outcome_under_a_held_lock)
    try:
        worker_id = await new_worker_id(client, member)
        r = await post_task(client, member, input="Count the cats", workerId=worker_id)
        assert r.status_code == 200, r.text
        task_id = r.json()["metadata"]["taskId"]
        done = await eventually(lambda: _task(client, member, task_id), _ended, "the turn's end")
    finally:
        holder.close()
    assert held  # the lock was taken as the end was to be recorded
    (turn,) = done["turns"]
    assert turn["status"] == "completed", turn
    assert turn["error"] is None
    assert turn["outputText"].startswith("Done: Count the cats")


async def test_turns_outlive_their_connections_being_dropped(
    client: httpx.AsyncClient,
    member: Member,
    database_url: str,
    reconfigure: Callable[..., None],
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("pg_terminate_backend")
    reconfigure(model=OfflineModel(delay_seconds=0.2), task_wait_seconds=0)
    worker_id = await new_worker_id(client, member)
    task_ids = []
    for n in range(6):
        r = await post_task(client, member, input=f"Count to {n}", workerId=worker_id)
        assert r.status_code == 200, r.text
        task_ids.append(r.json()["metadata"]["taskId"])
    killer = await asyncpg.connect(database_url)
    dropped = 0
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:  # every connection of this database, Kennel's
            # and DBOS's, again and again while the turns run and end
            dropped += len(
                await killer.fetch(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            await asyncio.sleep(0.25)
    finally:
        await killer.close()
    assert dropped > 0

    async def all_ended() -> list[dict[str, Any]] | None:
        found = [await _task(client, member, task_id) for task_id in task_ids]
        return found if all(_ended(body) for body in found) else None

    ended = await eventually(all_ended, what="every turn to end", timeout=60)
    assert [body["task"]["status"] for body in ended] == ["completed"] * 6, [
        body["turns"][0]["error"] for body in ended
    ]
