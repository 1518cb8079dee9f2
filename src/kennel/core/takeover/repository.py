"""The `executors` table: who runs DBOS workflows on this database, and their heartbeats."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import delete, insert, update

from kennel.db import Read, Write, select_rows
from kennel.models import executors

__all__ = ["ExecutorRow", "beat", "forget", "others", "register"]


class ExecutorRow(NamedTuple):
    executor_id: str
    host: str
    pid: int
    heartbeat_at: datetime


async def register(w: Write, executor_id: str, host: str, pid: int, now: datetime) -> None:
    """This process, heard from now (a row of an earlier life under its id is replaced)."""
    await w.execute(delete(executors).where(executors.c.executor_id == executor_id))
    await w.execute(
        insert(executors),
        {
            "executor_id": executor_id,
            "host": host,
            "pid": pid,
            "started_at": now,
            "heartbeat_at": now,
        },
    )


async def beat(w: Write, executor_id: str, at: datetime) -> bool:
    """Date the process's heartbeat; False when it has no row (another took it for dead)."""
    found = await w.execute(
        update(executors).where(executors.c.executor_id == executor_id).values(heartbeat_at=at)
    )
    return found > 0


async def others(r: Read, executor_id: str) -> list[ExecutorRow]:
    rows = await r.all(
        select_rows(ExecutorRow, executors).where(executors.c.executor_id != executor_id)
    )
    return [ExecutorRow._make(row) for row in rows]


async def forget(w: Write, executor_id: str, heartbeat_at: datetime) -> None:
    """Remove a dead process's row, unless it beat meanwhile (then it lives)."""
    await w.execute(
        delete(executors).where(
            executors.c.executor_id == executor_id,
            executors.c.heartbeat_at == heartbeat_at,
        )
    )
