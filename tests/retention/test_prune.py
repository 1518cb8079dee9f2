"""`prune`: what is older than the retention period goes, with what hangs on it; the rest stays.

Rows are made through the API (real turns of the offline model, on both backends) and then
dated back in the database: a prune of 30 days sees only this test's aged rows as old.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import httpx
import pytest
from dbos import DBOS
from fastapi import FastAPI
from sqlalchemy import func, insert, select, text, update

from kennel.core.ids import new_id
from kennel.core.timestamps import utcnow
from kennel.models import (
    idempotency_keys,
    mail_messages,
    mail_threads,
    schedule_runs,
    tasks,
    turn_files,
    turns,
    webhook_events,
    webhook_executions,
    workspace_files,
)
from kennel.retention import COUNTED, prune
from kennel.tasks.starting import TurnRequest, record_turn
from tests.factories import Member
from tests.factories.workers import new_worker_id

OLD = timedelta(days=40)
DAYS = 30


async def run_task(
    app: FastAPI, client: httpx.AsyncClient, member: Member, worker_id: str, **files: bytes
) -> tuple[str, str]:
    """A finished turn of the offline model, with `files` uploaded: (task id, turn id)."""
    if files:
        r = await client.post(
            "/api/tasks",
            data={"input": "Look at the file", "workerId": worker_id},
            files=[("files", (name, data, "text/plain")) for name, data in files.items()],
            headers=member.headers,
        )
    else:
        r = await client.post(
            "/api/tasks", json={"input": "Say hello", "workerId": worker_id}, headers=member.headers
        )
    assert r.status_code == 200, r.text
    assert r.json()["running"] is False
    public_id = r.json()["metadata"]["taskId"]
    async with app.state.runtime.db.read() as r:
        row = await r.first(
            select(tasks.c.id, turns.c.id)
            .join(turns, turns.c.task_id == tasks.c.id)
            .where(
                tasks.c.public_id == public_id, tasks.c.organization_id == member.organization_id
            )
            .order_by(turns.c.seq.desc())
        )
    assert row is not None
    return row[0], row[1]


def _system_table(app: FastAPI, name: str) -> str:
    return name if app.state.runtime.settings.is_sqlite else f"dbos.{name}"


async def age_task(app: FastAPI, task_id: str, by: timedelta = OLD) -> None:
    """Date the task, its turns and their DBOS workflows back by `by`."""
    then = utcnow() - by
    db = app.state.runtime.db
    async with db.write() as w:
        await w.execute(
            update(tasks)
            .where(tasks.c.id == task_id)
            .values(created_at=then, last_turn_at=then, completed_at=then)
        )
        await w.execute(
            update(tasks)
            .where(tasks.c.id == task_id, tasks.c.archived_at.is_not(None))
            .values(archived_at=then)
        )
        turn_ids = [
            row[0] for row in await w.all(select(turns.c.id).where(turns.c.task_id == task_id))
        ]
        await w.execute(update(turns).where(turns.c.task_id == task_id).values(created_at=then))
    for turn_id in turn_ids:
        await age_workflows(app, turn_id, by)


async def age_workflows(app: FastAPI, prefix: str, by: timedelta = OLD) -> None:
    """Date back DBOS's workflow `prefix` and those named after it (`<turn>:webhook`, ...)."""
    ms = int((utcnow() - by).timestamp() * 1000)
    async with app.state.runtime.db.write() as w:
        await w.execute(
            text(
                f"UPDATE {_system_table(app, 'workflow_status')} SET created_at = :ms"
                " WHERE workflow_uuid = :id OR workflow_uuid LIKE :named"
            ),
            {"ms": ms, "id": prefix, "named": f"{prefix}:%"},
        )


async def count(app: FastAPI, table: Any, *where: Any) -> int:
    async with app.state.runtime.db.read() as r:
        return int(await r.scalar(select(func.count()).select_from(table).where(*where)))


async def count_system(app: FastAPI, table: str, workflow_id: str) -> int:
    async with app.state.runtime.db.read() as r:
        return int(
            await r.scalar(
                text(f"SELECT count(*) FROM {_system_table(app, table)} WHERE workflow_uuid = :id"),
                {"id": workflow_id},
            )
        )


async def archive(client: httpx.AsyncClient, member: Member, public_id: str) -> None:
    r = await client.delete(f"/api/tasks/{public_id}", headers=member.headers)
    assert r.status_code == 200, r.text


async def public_id_of(app: FastAPI, task_id: str) -> str:
    async with app.state.runtime.db.read() as r:
        return str(await r.scalar(select(tasks.c.public_id).where(tasks.c.id == task_id)))


class TestTasks:
    async def test_old_and_old_archived_tasks_go_with_what_hangs_on_them(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        old_task, old_turn = await run_task(app, client, member, worker_id, **{"notes.txt": b"x"})
        new_task, new_turn = await run_task(app, client, member, worker_id)
        archived_old, _ = await run_task(app, client, member, worker_id)
        archived_new, _ = await run_task(app, client, member, worker_id)
        for task_id in (archived_old, archived_new):
            await archive(client, member, await public_id_of(app, task_id))
        for task_id in (old_task, archived_old):
            await age_task(app, task_id)
        db = app.state.runtime.db
        async with db.write() as w:  # the thread a reply to the old task's mail would follow
            await w.execute(
                insert(mail_threads),
                {
                    "worker_id": worker_id,
                    "message_id": f"<{secrets.token_hex(6)}@x>",
                    "task_id": old_task,
                },
            )
        assert await count(app, turn_files, turn_files.c.turn_id == old_turn) == 1
        assert await count_system(app, "workflow_status", old_turn) == 1
        for table in ("operation_outputs", "streams"):  # its steps, its live events
            assert await count_system(app, table, old_turn) >= 1

        dry = await prune(db, days=DAYS, workflows=DBOS, dry_run=True)
        assert (dry.counts["tasks"], dry.counts["turns"], dry.counts["turn_files"]) == (2, 2, 1)
        assert dry.counts["mail_threads"] == 1
        assert dry.counts["dbos_workflows"] >= 2  # the two turns' (and their listeners')
        assert await count(app, tasks, tasks.c.id == old_task) == 1  # a dry run deletes nothing
        assert await count_system(app, "workflow_status", old_turn) == 1

        done = await prune(db, days=DAYS, workflows=DBOS)
        assert done.counts == dry.counts
        for task_id in (old_task, archived_old):
            assert await count(app, tasks, tasks.c.id == task_id) == 0
            assert await count(app, turns, turns.c.task_id == task_id) == 0
        assert await count(app, turn_files, turn_files.c.turn_id == old_turn) == 0
        assert await count(app, mail_threads, mail_threads.c.task_id == old_task) == 0
        assert await DBOS.get_workflow_status_async(old_turn) is None
        for table in ("operation_outputs", "streams"):
            assert await count_system(app, table, old_turn) == 0
        # Kept: the recent tasks (archived or not), their workflows, the worker's files.
        for task_id in (new_task, archived_new):
            assert await count(app, tasks, tasks.c.id == task_id) == 1
        assert await DBOS.get_workflow_status_async(new_turn) is not None
        assert await count(app, workspace_files, workspace_files.c.worker_id == worker_id) == 1
        r = await client.get(
            f"/api/tasks/{await public_id_of(app, new_task)}", headers=member.headers
        )
        assert r.status_code == 200, r.text
        again = await prune(db, days=DAYS, workflows=DBOS)
        assert again.total == 0

    async def test_archiving_is_activity(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        """A task whose last turn is old but which was archived recently stays."""
        worker_id = await new_worker_id(client, member)
        task_id, _ = await run_task(app, client, member, worker_id)
        await age_task(app, task_id)
        await archive(client, member, await public_id_of(app, task_id))  # archived now
        await prune(app.state.runtime.db, days=DAYS, workflows=None)
        assert await count(app, tasks, tasks.c.id == task_id) == 1

    async def test_a_task_with_a_turn_in_flight_stays_however_old(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        rt = app.state.runtime
        request = TurnRequest(origin="api", caller=member.caller, input="Wait", worker_id=worker_id)
        async with rt.db.write() as w:  # recorded, never queued: pending until ended
            started = await record_turn(w, rt, request)
        await age_task(app, started.task.id)
        report = await prune(rt.db, days=DAYS, workflows=DBOS)
        assert await count(app, tasks, tasks.c.id == started.task.id) == 1
        assert await count(app, turns, turns.c.id == started.turn.id) == 1
        assert report.counts["tasks"] == 0

    async def test_a_task_whose_turn_came_after_it_was_picked_stays(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        """The deletion tests the age again: a follow-up turn between the two keeps it."""
        from kennel.retention import repository as repo

        worker_id = await new_worker_id(client, member)
        task_id, _ = await run_task(app, client, member, worker_id)
        await age_task(app, task_id)
        db = app.state.runtime.db
        cutoff = utcnow() - timedelta(days=DAYS)
        async with db.read() as r:
            batch = await repo.task_batch(r, cutoff, after="", limit=500, max_turns=500)
        assert task_id in batch.ids
        r = await client.post(
            "/api/tasks",
            json={"input": "And again", "taskId": await public_id_of(app, task_id)},
            headers=member.headers,
        )
        assert r.status_code == 200, r.text
        async with db.write() as w:
            deleted = await repo.delete_tasks(w, [task_id], cutoff)
        assert deleted["tasks"] == 0
        assert await count(app, turns, turns.c.task_id == task_id) == 2

    async def test_a_batch_holds_at_most_the_batch_of_turns(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        made = [await run_task(app, client, member, worker_id) for _ in range(5)]
        for task_id, _ in made:
            await age_task(app, task_id)
        report = await prune(app.state.runtime.db, days=DAYS, workflows=None, batch=2)
        assert report.counts["tasks"] == 5
        assert report.counts["dbos_workflows"] == 0  # left alone without a store
        for task_id, _ in made:
            assert await count(app, tasks, tasks.c.id == task_id) == 0


class TestOtherRows:
    async def test_old_mail_runs_keys_and_deliveries_go_unless_still_needed(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        db = app.state.runtime.db
        old, new = utcnow() - OLD, utcnow()

        def message(status: str, when: Any, reply: str | None = None) -> dict[str, Any]:
            return {
                "id": new_id("eml"),
                "worker_id": worker_id,
                "envelope_from": "ann@example.com",
                "recipient": "w@mail.kennel.test",
                "peer": "127.0.0.1",
                "raw": b"Subject: hi\r\n\r\nhello\r\n",
                "status": status,
                "reply_status": reply,
                "received_at": when,
            }

        mails = {
            "old started": message("started", old, "sent"),
            "old refused": message("refused", old),
            "old stored": message("stored", old),  # not yet taken in
            "old reply pending": message("started", old, "pending"),
            "new": message("started", new, "sent"),
        }
        r = await client.post(
            f"/api/workers/{worker_id}/schedules",
            json={"input": "Check", "when": {"type": "interval", "intervalSeconds": 3600}},
            headers=member.headers,
        )
        assert r.status_code == 201, r.text
        schedule_id = r.json()["id"]
        runs = {
            name: {
                "id": new_id("run"),
                "schedule_id": schedule_id,
                "due_at": when,
                "fired_at": when,
                "outcome": "started",
                "missed_count": 0,
            }
            for name, when in (("old", old), ("new", new))
        }
        keys = {
            name: {
                "organization_id": member.organization_id,
                "operation": "create_task",
                "key": f"{name}-{secrets.token_hex(4)}",
                "request_hash": "0" * 64,
                "resource_id": "trn_x",
                "created_at": when,
            }
            for name, when in (("old", old), ("new", new))
        }
        turn_of = {name: f"trn_{secrets.token_hex(8)}" for name in ("old", "old retrying", "new")}
        events = {
            name: {
                "id": new_id("msg"),
                "worker_id": worker_id,
                "turn_id": turn_of[name],
                "type": "task.completed",
                "body": "{}",
                "webhook_version": 1,
                "task_id": "t",
                "task_title": "t",
                "created_at": new if name == "new" else old,
            }
            for name in turn_of
        }
        async with db.write() as w:
            await w.execute(insert(mail_messages), list(mails.values()))
            await w.execute(insert(schedule_runs), list(runs.values()))
            await w.execute(insert(idempotency_keys), list(keys.values()))
            await w.execute(insert(webhook_events), list(events.values()))
            await w.execute(
                insert(webhook_executions),
                [
                    {
                        "id": new_id("whx"),
                        "event_id": event["id"],
                        "worker_id": worker_id,
                        "attempt": 1,
                        "url": "https://example.com/hook",
                        "request_status": "error",
                        "duration_ms": 5,
                        "created_at": event["created_at"],
                    }
                    for event in events.values()
                ],
            )

        retrying = f"{turn_of['old retrying']}:webhook"
        report = await prune(db, days=DAYS, workflows=_StillRunning(retrying))

        def kept(table: Any, rows: dict[str, dict[str, Any]]) -> set[str]:
            return {name for name, row in rows.items() if row["id"] in present[table.name]}

        present: dict[str, set[str]] = {}
        async with db.read() as r:
            for table, rows in (
                (mail_messages, mails),
                (schedule_runs, runs),
                (webhook_events, events),
            ):
                ids = [row["id"] for row in rows.values()]
                found = await r.all(select(table.c.id).where(table.c.id.in_(ids)))
                present[table.name] = {row[0] for row in found}
            found_keys = await r.all(
                select(idempotency_keys.c.key).where(
                    idempotency_keys.c.organization_id == member.organization_id
                )
            )
        assert kept(mail_messages, mails) == {"old stored", "old reply pending", "new"}
        assert kept(schedule_runs, runs) == {"new"}
        assert kept(webhook_events, events) == {"old retrying", "new"}
        assert {row[0] for row in found_keys} == {keys["new"]["key"]}
        assert report.counts["mail_messages"] == 2
        assert (report.counts["webhook_events"], report.counts["webhook_attempts"]) == (1, 1)
        assert report.counts["schedule_runs"] == 1
        assert report.counts["idempotency_keys"] == 1
        r = await client.get(f"/api/workers/{worker_id}/schedules", headers=member.headers)
        assert [s["id"] for s in r.json()["schedules"]] == [schedule_id]  # the schedule stays

    async def test_the_report_names_every_kind(self, app: FastAPI) -> None:
        report = await prune(app.state.runtime.db, days=3650, workflows=None, dry_run=True)
        assert list(report.counts) == list(COUNTED)
        assert report.summary().startswith("would delete (older than ")


class _StillRunning:
    """DBOS as the prune sees it, with one delivery workflow still retrying."""

    def __init__(self, workflow_id: str) -> None:
        self.workflow_id = workflow_id

    def list_workflows(self, **options: Any) -> list[Any]:
        if options.get("workflow_ids") and self.workflow_id in options["workflow_ids"]:
            return [type("Status", (), {"workflow_id": self.workflow_id, "status": "PENDING"})()]
        return []

    def delete_workflows(self, workflow_ids: list[str]) -> None:
        raise AssertionError("nothing to delete here")


pytestmark = pytest.mark.usefixtures("app")


class TestAlongsideRequests:
    async def test_requests_are_served_between_the_batches(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        """A prune of small batches in the server's own loop: requests answered while it runs,
        between its transactions, and none fails."""
        import asyncio
        import time

        worker_id = await new_worker_id(client, member)
        made = [await run_task(app, client, member, worker_id) for _ in range(12)]
        for task_id, _ in made:
            await age_task(app, task_id)
        answered: list[tuple[float, int]] = []
        pruning = asyncio.Event()

        async def requests() -> None:
            await pruning.wait()
            n = 0
            while pruning.is_set():
                n += 1
                for r in (
                    await client.post(
                        "/api/tasks",
                        json={"input": f"Busy {n}", "workerId": worker_id},
                        headers=member.headers,
                    ),
                    await client.get(
                        "/api/tasks", params={"workerId": worker_id}, headers=member.headers
                    ),
                ):
                    answered.append((time.monotonic(), r.status_code))

        async def pruned() -> tuple[float, float, Any]:
            pruning.set()
            await asyncio.sleep(0.2)  # the requests are under way
            started = time.monotonic()
            report = await prune(
                app.state.runtime.db, days=DAYS, workflows=DBOS, batch=1, pause_seconds=0.05
            )
            ended = time.monotonic()
            pruning.clear()
            return started, ended, report

        (started, ended, report), _ = await asyncio.gather(pruned(), requests())
        assert report.counts["tasks"] == 12
        assert report.transactions >= 12  # one task a transaction
        assert [code for _, code in answered if code != 200] == []
        during = [at for at, _ in answered if started < at < ended]
        assert len(during) >= 2, (len(answered), ended - started)
