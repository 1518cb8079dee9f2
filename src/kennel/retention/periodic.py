"""The server's own prune, once an hour, when `KENNEL_RETENTION_DAYS` is set.

Each process wakes at the start of every hour (and once soon after it starts) and claims the
hour by starting a DBOS workflow whose id is the hour (`prune:<hour>`): DBOS makes one workflow
per id, so among the processes on one database the first to ask is the one that prunes; the
others get its name back and go to sleep. Were two ever to prune at once, nothing would break:
each deletion tests the age again, and a row deleted by one is simply not found by the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from dbos import DBOS, SetWorkflowID

from kennel.core.runtime import Runtime
from kennel.retention.service import prune

__all__ = ["PERIOD_SECONDS", "RetentionService", "claim_hour"]

log = logging.getLogger("kennel.retention")

PERIOD_SECONDS = 3600
# After start-up, before the first prune: the server's start is not slowed by it.
_FIRST_DELAY_SECONDS = 5.0
# Between two transactions of a prune: the server's own work goes first.
_PAUSE_SECONDS = 0.02


@DBOS.workflow()
async def claim_hour(executor_id: str) -> str:
    """The process that prunes this hour: the first to start the hour's workflow."""
    return executor_id


class RetentionService:
    """A `BackgroundService`: prunes every hour in one process of those on the database."""

    def __init__(self, rt: Runtime, days: int) -> None:
        self._rt = rt
        self._days = days
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="kennel-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        await asyncio.sleep(_FIRST_DELAY_SECONDS)
        while True:
            hour = int(time.time()) // PERIOD_SECONDS
            try:
                await self.run_once(hour)
            except Exception as exc:  # a database fault: the next hour tries again
                log.warning("prune failed (trying again next hour): %s", exc)
            await asyncio.sleep((hour + 1) * PERIOD_SECONDS - time.time() + 1)

    async def run_once(self, hour: int) -> bool:
        """Prune if this process claims `hour`; whether it did."""
        me = self._rt.settings.executor_id
        with SetWorkflowID(f"prune:{hour}"):
            handle = await DBOS.start_workflow_async(claim_hour, me)
        if await handle.get_result() != me:
            return False
        started = time.monotonic()
        report = await prune(
            self._rt.db, days=self._days, workflows=DBOS, pause_seconds=_PAUSE_SECONDS
        )
        log.info(
            "pruned: %s in %.1f s (%d transactions, the longest %.0f ms)",
            report.summary(),
            time.monotonic() - started,
            report.transactions,
            report.longest_seconds * 1000,
            extra={"retentionDays": self._days, "deleted": report.counts},
        )
        return True
