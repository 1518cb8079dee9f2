"""Takeover: live processes finish the work of one that died.

DBOS recovers, at launch, the unfinished workflows of its own executor id; a process killed
and never started again (or started again under another id, as container platforms do, and as
Kennel's unique default id does) would leave its turns, deliveries, mail intakes and firings
`PENDING` for good. So every process writes a heartbeat to the `executors` table each
`KENNEL_HEARTBEAT_SECONDS`, and at each beat looks for processes that are dead:

- silent for `KENNEL_TAKEOVER_AFTER_SECONDS`, or
- of this same host (host name, boot and pid namespace) whose pid is gone: a process killed
  and started again on one machine takes its previous life's work over at once;
- a process that stopped on purpose (SIGTERM) dates its heartbeat far back once DBOS has shut
  down, so its unfinished turns resume elsewhere at the next beat.

A dead process's workflows are handed to DBOS's recovery for that executor id
(`DBOS._recover_pending_workflows`, the call DBOS's own Conductor makes), which puts each back
on its queue, only if it is still `PENDING` under that id: the first live process to dequeue
it runs it, from its last recorded step, so no finished step runs again (the one in flight
when the process died runs once more). Two processes taking one dead process over at once is
harmless for the same reason. What was taken over is logged at WARNING.

The same beat runs the domains' sweeps (`sweeps`): work whose row committed but whose queueing
failed (a request that met a database fault right after its commit) is queued within a beat,
without waiting for a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache

from dbos import DBOS

from kennel.core import wakeup
from kennel.core.runtime import Runtime
from kennel.core.takeover import repository as repo
from kennel.core.timestamps import utcnow
from kennel.metrics import record_database_error

__all__ = ["Sweep", "Takeover", "host_identity"]

log = logging.getLogger("kennel.takeover")

Sweep = Callable[[Runtime], Awaitable[object]]

# What a process that stopped on purpose leaves as its heartbeat: long ago.
_STOPPED = datetime(2000, 1, 1, tzinfo=UTC)


@cache
def host_identity() -> str:
    """This machine and pid namespace: where a pid means the same process."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()[:8]
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        boot, namespace = "", ""
    return f"{socket.gethostname()[:200]}/{boot}/{namespace}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


class Takeover:
    """The heartbeat and the takeover of dead processes (a `BackgroundService`)."""

    def __init__(self, rt: Runtime, *, sweeps: Sequence[Sweep] = ()) -> None:
        self._rt = rt
        self._me = rt.settings.executor_id
        self._sweeps = sweeps
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        async with self._rt.db.write() as w:
            await repo.register(w, self._me, host_identity(), os.getpid(), utcnow())
        await self.beat()  # a previous life on this host is taken over before anything else
        self._task = asyncio.create_task(self._run(), name="kennel-heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def release(self) -> None:
        """Once DBOS has shut down: date the heartbeat far back, so that live processes take
        this one's unfinished work over at their next beat."""
        try:
            async with self._rt.db.write() as w:
                await repo.beat(w, self._me, _STOPPED)
        except Exception as exc:  # stopping anyway: the others wait for the silence instead
            log.warning("could not mark this process as stopped: %s", exc)

    async def _run(self) -> None:
        period = self._rt.settings.heartbeat_seconds
        while True:
            await asyncio.sleep(period)
            try:
                await self.beat()
            except Exception as exc:  # a database fault: the next beat tries again
                record_database_error(exc, "heartbeat")
                log.warning("heartbeat failed (trying again in %.0f s): %s", period, exc)

    async def beat(self) -> None:
        """Say this process is alive, take over the dead, and run the sweeps."""
        now = utcnow()
        async with self._rt.db.write() as w:
            if not await repo.beat(w, self._me, now):
                log.warning("this process (%s) was taken for dead by another; it goes on", self._me)
                await repo.register(w, self._me, host_identity(), os.getpid(), now)
        async with self._rt.db.read() as r:
            others = await repo.others(r, self._me)
        silent_since = now - timedelta(seconds=self._rt.settings.takeover_after_seconds)
        for executor_id, host, pid, heartbeat_at in others:
            if heartbeat_at < silent_since:
                why = "stopped" if heartbeat_at == _STOPPED else "silent since " + str(heartbeat_at)
            elif host == host_identity() and (pid == os.getpid() or not _pid_alive(pid)):
                why = f"its process {pid} on this host is gone"
            else:
                continue
            await self._take_over(executor_id, heartbeat_at, why)
        for sweep in self._sweeps:
            await sweep(self._rt)

    async def _take_over(self, executor_id: str, heartbeat_at: datetime, why: str) -> None:
        handles = await asyncio.to_thread(DBOS._recover_pending_workflows, [executor_id])
        if handles:
            wakeup.ring_all()  # its work is back on the queues: this process starts it at once
        async with self._rt.db.write() as w:
            await repo.forget(w, executor_id, heartbeat_at)
        ids = [handle.get_workflow_id() for handle in handles]
        if ids:
            log.warning(
                "took over %d unfinished workflow(s) of process %s (%s)",
                len(ids),
                executor_id,
                why,
                extra={"executorId": executor_id, "workflowIds": ids[:50], "count": len(ids)},
            )
        else:
            log.info("process %s is gone (%s); it left no unfinished work", executor_id, why)
