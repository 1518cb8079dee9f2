"""`prune`: delete what is older than the retention period, a short transaction at a time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kennel.core.timestamps import utcnow
from kennel.db import Database, Write
from kennel.retention import durable_rows
from kennel.retention import repository as repo
from kennel.retention.durable_rows import WorkflowStore

__all__ = ["BATCH_ROWS", "COUNTED", "PruneReport", "prune"]

log = logging.getLogger("kennel.retention")

# Rows a transaction deletes (about; a task's turns go with it, so a batch of tasks holds at
# most this many turns, or one task). On SQLite a batch of 500 turns is a write of a few
# milliseconds to tens of them: the server's own writes wait at most that long for their turn.
BATCH_ROWS = 500

# What a prune reports, in this order.
COUNTED = (
    "tasks",
    "turns",
    "turn_files",
    "mail_threads",
    "mail_messages",
    "webhook_events",
    "webhook_attempts",
    "schedule_runs",
    "idempotency_keys",
    "dbos_workflows",
)


@dataclass
class PruneReport:
    cutoff: datetime
    dry_run: bool
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTED, 0))
    transactions: int = 0
    longest_seconds: float = 0.0  # the longest of its write transactions

    def add(self, counts: dict[str, int]) -> None:
        for name, count in counts.items():
            self.counts[name] += count

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        what = "would delete" if self.dry_run else "deleted"
        listed = ", ".join(f"{self.counts[name]} {name}" for name in COUNTED)
        return f"{what} (older than {self.cutoff:%Y-%m-%d %H:%M:%S} UTC): {listed}"


async def prune(
    db: Database,
    *,
    days: int,
    workflows: WorkflowStore | None,
    dry_run: bool = False,
    now: datetime | None = None,
    batch: int = BATCH_ROWS,
    pause_seconds: float = 0.0,
) -> PruneReport:
    """Delete (or with `dry_run` count) what is older than `days` days; `workflows`: DBOS's
    rows (None: left alone). `pause_seconds` between transactions gives way to other work."""
    report = PruneReport(cutoff=(now or utcnow()) - timedelta(days=days), dry_run=dry_run)
    step = _Steps(db, report, batch, pause_seconds)
    await step.tasks()
    await step.mail()
    await step.webhook_events(workflows)
    await step.schedule_runs()
    await step.idempotency_keys()
    if workflows is not None:
        await step.dbos_workflows(workflows)
    return report


class _Steps:
    """One method per kind of row; each walks keyset pages and deletes them one at a time."""

    def __init__(self, db: Database, report: PruneReport, batch: int, pause: float) -> None:
        self.db = db
        self.report = report
        self.cutoff = report.cutoff
        self.dry_run = report.dry_run
        self.batch = batch
        self.pause = pause

    async def _breathe(self) -> None:
        await asyncio.sleep(self.pause)

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[Write]:
        """A write transaction, timed: how long others may have waited on it (SQLite)."""
        started = time.monotonic()
        async with self.db.write() as w:
            yield w
        self._timed(time.monotonic() - started)

    def _timed(self, seconds: float) -> None:
        self.report.transactions += 1
        self.report.longest_seconds = max(self.report.longest_seconds, seconds)

    async def tasks(self) -> None:
        after = ""
        while True:
            async with self.db.read() as r:
                found = await repo.task_batch(
                    r, self.cutoff, after=after, limit=self.batch, max_turns=self.batch
                )
                if found.ids and self.dry_run:
                    self.report.add(await repo.count_task_rows(r, found.ids))
            if not found.ids:
                return
            after = found.ids[-1]
            if not self.dry_run:
                async with self._write() as w:
                    self.report.add(await repo.delete_tasks(w, found.ids, self.cutoff))
            await self._breathe()

    async def mail(self) -> None:
        after = ""
        while True:
            async with self.db.read() as r:
                ids = await repo.mail_batch(r, self.cutoff, after=after, limit=self.batch)
            if not ids:
                return
            after = ids[-1]
            if self.dry_run:
                self.report.add({"mail_messages": len(ids)})
            else:
                async with self._write() as w:
                    self.report.add({"mail_messages": await repo.delete_mail(w, ids, self.cutoff)})
            await self._breathe()

    async def webhook_events(self, workflows: WorkflowStore | None) -> None:
        after = ""
        while True:
            async with self.db.read() as r:
                found = await repo.event_batch(r, self.cutoff, after=after, limit=self.batch)
            if not found:
                return
            after = found[-1][0]
            # An event whose delivery still retries (its schedule may outlast the retention
            # period: 27.6 h by default against a day) keeps its row; the retry needs it.
            retrying = (
                set()
                if workflows is None
                else await durable_rows.unfinished(workflows, [f"{t}:webhook" for _, t in found])
            )
            ids = [event for event, turn in found if f"{turn}:webhook" not in retrying]
            if ids and self.dry_run:
                async with self.db.read() as r:
                    attempts = await repo.count_attempts(r, ids)
                self.report.add({"webhook_events": len(ids), "webhook_attempts": attempts})
            elif ids:
                async with self._write() as w:
                    self.report.add(await repo.delete_events(w, ids))
            await self._breathe()

    async def schedule_runs(self) -> None:
        after = ""
        while True:
            async with self.db.read() as r:
                ids = await repo.schedule_run_batch(r, self.cutoff, after=after, limit=self.batch)
            if not ids:
                return
            after = ids[-1]
            if self.dry_run:
                self.report.add({"schedule_runs": len(ids)})
            else:
                async with self._write() as w:
                    self.report.add({"schedule_runs": await repo.delete_schedule_runs(w, ids)})
            await self._breathe()

    async def idempotency_keys(self) -> None:
        after: repo.IdempotencyKey = ("", "", "")
        while True:
            async with self.db.read() as r:
                keys = await repo.idempotency_batch(r, self.cutoff, after=after, limit=self.batch)
            if not keys:
                return
            after = keys[-1]
            if self.dry_run:
                self.report.add({"idempotency_keys": len(keys)})
            else:
                async with self._write() as w:
                    deleted = await repo.delete_idempotency_keys(w, keys)
                self.report.add({"idempotency_keys": deleted})
            await self._breathe()

    async def dbos_workflows(self, workflows: WorkflowStore) -> None:
        offset = 0
        previous: list[str] = []
        while True:
            # A real run deletes each page, so the next one starts at the front again.
            ids = await durable_rows.finished_before(
                workflows, self.cutoff, limit=self.batch, offset=offset
            )
            if not ids or ids == previous:  # the same page again: it could not be deleted
                return
            previous = ids
            if self.dry_run:
                offset += len(ids)
            else:
                started = time.monotonic()
                await durable_rows.forget(workflows, ids)  # one transaction of DBOS's
                self._timed(time.monotonic() - started)
            self.report.add({"dbos_workflows": len(ids)})
            await self._breathe()
