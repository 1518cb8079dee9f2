"""The prune's statements: which rows are old enough to go, and their deletion in batches.

Each `*_batch` returns at most `limit` keys after `after` (keyset pages: a dry run walks the
same pages as a real one without deleting); each `delete_*` deletes the keys it is given, with
the age test again, so a row that came back to life between the two (a follow-up turn on an
old task) stays.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import ColumnElement, and_, delete, exists, func, or_, select, tuple_

from kennel.db import Read, Write
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
)

__all__ = [
    "IdempotencyKey",
    "TaskBatch",
    "count_attempts",
    "count_task_rows",
    "delete_events",
    "delete_idempotency_keys",
    "delete_mail",
    "delete_schedule_runs",
    "delete_tasks",
    "event_batch",
    "idempotency_batch",
    "mail_batch",
    "schedule_run_batch",
    "task_batch",
]

IdempotencyKey = tuple[str, str, str]  # organization_id, operation, key


def _idle_task(cutoff: datetime) -> ColumnElement[bool]:
    """A task whose last activity (its latest turn's start, its end, its archival) is before
    `cutoff` and which has no turn pending or running."""
    return and_(
        tasks.c.last_turn_at < cutoff,
        or_(tasks.c.completed_at.is_(None), tasks.c.completed_at < cutoff),
        or_(tasks.c.archived_at.is_(None), tasks.c.archived_at < cutoff),
        tasks.c.active_turn_id.is_(None),
        ~exists().where(turns.c.task_id == tasks.c.id, turns.c.status.in_(("pending", "running"))),
    )


class TaskBatch(NamedTuple):
    """Ids of idle tasks, and how many turns they hold (what one transaction deletes)."""

    ids: list[str]
    turn_count: int


async def task_batch(
    r: Read, cutoff: datetime, *, after: str, limit: int, max_turns: int
) -> TaskBatch:
    """Idle tasks after id `after`: at most `limit`, and no more than `max_turns` turns in all
    (always at least one task), so a transaction deletes a bounded number of rows."""
    rows = await r.all(
        select(tasks.c.id, tasks.c.turn_count)
        .where(tasks.c.id > after, _idle_task(cutoff))
        .order_by(tasks.c.id)
        .limit(limit)
    )
    ids: list[str] = []
    count = 0
    for task_id, turn_count in rows:
        if ids and count + turn_count > max_turns:
            break
        ids.append(task_id)
        count += turn_count
    return TaskBatch(ids, count)


async def delete_tasks(w: Write, ids: Sequence[str], cutoff: datetime) -> dict[str, int]:
    """Delete those tasks that are still idle, with their turns, the files they published and
    their mail threads (by cascade); what went, per table."""
    gone = [
        row[0]
        for row in await w.all(
            select(tasks.c.id).where(tasks.c.id.in_(list(ids)), _idle_task(cutoff))
        )
    ]
    if not gone:
        return {"tasks": 0, "turns": 0, "turn_files": 0, "mail_threads": 0}
    turn_ids = select(turns.c.id).where(turns.c.task_id.in_(gone)).scalar_subquery()
    counts = {
        "turns": await w.scalar(
            select(func.count()).select_from(turns).where(turns.c.task_id.in_(gone))
        ),
        "turn_files": await w.scalar(
            select(func.count()).select_from(turn_files).where(turn_files.c.turn_id.in_(turn_ids))
        ),
        "mail_threads": await w.scalar(
            select(func.count()).select_from(mail_threads).where(mail_threads.c.task_id.in_(gone))
        ),
    }
    deleted = await w.execute(delete(tasks).where(tasks.c.id.in_(gone), _idle_task(cutoff)))
    return {"tasks": deleted, **{k: int(v or 0) for k, v in counts.items()}}


async def count_task_rows(r: Read, ids: Sequence[str]) -> dict[str, int]:
    """What deleting those tasks would take with them (for a dry run)."""
    turn_ids = select(turns.c.id).where(turns.c.task_id.in_(list(ids))).scalar_subquery()
    return {
        "tasks": len(ids),
        "turns": int(
            await r.scalar(
                select(func.count()).select_from(turns).where(turns.c.task_id.in_(list(ids)))
            )
            or 0
        ),
        "turn_files": int(
            await r.scalar(
                select(func.count())
                .select_from(turn_files)
                .where(turn_files.c.turn_id.in_(turn_ids))
            )
            or 0
        ),
        "mail_threads": int(
            await r.scalar(
                select(func.count())
                .select_from(mail_threads)
                .where(mail_threads.c.task_id.in_(list(ids)))
            )
            or 0
        ),
    }


def _old_mail(cutoff: datetime) -> ColumnElement[bool]:
    # `stored`: not yet taken in (its intake may be queued); a `pending` reply is still to send.
    return and_(
        mail_messages.c.received_at < cutoff,
        mail_messages.c.status != "stored",
        or_(mail_messages.c.reply_status.is_(None), mail_messages.c.reply_status != "pending"),
    )


async def mail_batch(r: Read, cutoff: datetime, *, after: str, limit: int) -> list[str]:
    rows = await r.all(
        select(mail_messages.c.id)
        .where(mail_messages.c.id > after, _old_mail(cutoff))
        .order_by(mail_messages.c.id)
        .limit(limit)
    )
    return [row[0] for row in rows]


async def delete_mail(w: Write, ids: Sequence[str], cutoff: datetime) -> int:
    return await w.execute(
        delete(mail_messages).where(mail_messages.c.id.in_(list(ids)), _old_mail(cutoff))
    )


async def event_batch(
    r: Read, cutoff: datetime, *, after: str, limit: int
) -> list[tuple[str, str]]:
    """Webhook events made before `cutoff`: (event id, turn id)."""
    rows = await r.all(
        select(webhook_events.c.id, webhook_events.c.turn_id)
        .where(webhook_events.c.id > after, webhook_events.c.created_at < cutoff)
        .order_by(webhook_events.c.id)
        .limit(limit)
    )
    return [(row[0], row[1]) for row in rows]


async def count_attempts(r: Read, event_ids: Sequence[str]) -> int:
    return int(
        await r.scalar(
            select(func.count())
            .select_from(webhook_executions)
            .where(webhook_executions.c.event_id.in_(list(event_ids)))
        )
        or 0
    )


async def delete_events(w: Write, event_ids: Sequence[str]) -> dict[str, int]:
    """Delete the events and (by cascade) their delivery attempts."""
    attempts = await count_attempts(w, event_ids)
    events = await w.execute(delete(webhook_events).where(webhook_events.c.id.in_(list(event_ids))))
    return {"webhook_events": events, "webhook_attempts": attempts}


async def schedule_run_batch(r: Read, cutoff: datetime, *, after: str, limit: int) -> list[str]:
    rows = await r.all(
        select(schedule_runs.c.id)
        .where(schedule_runs.c.id > after, schedule_runs.c.fired_at < cutoff)
        .order_by(schedule_runs.c.id)
        .limit(limit)
    )
    return [row[0] for row in rows]


async def delete_schedule_runs(w: Write, ids: Sequence[str]) -> int:
    return await w.execute(delete(schedule_runs).where(schedule_runs.c.id.in_(list(ids))))


_IDEMPOTENCY_KEY = tuple_(
    idempotency_keys.c.organization_id, idempotency_keys.c.operation, idempotency_keys.c.key
)


async def idempotency_batch(
    r: Read, cutoff: datetime, *, after: IdempotencyKey, limit: int
) -> list[IdempotencyKey]:
    rows = await r.all(
        select(
            idempotency_keys.c.organization_id,
            idempotency_keys.c.operation,
            idempotency_keys.c.key,
        )
        .where(_IDEMPOTENCY_KEY > tuple_(*after), idempotency_keys.c.created_at < cutoff)
        .order_by(
            idempotency_keys.c.organization_id,
            idempotency_keys.c.operation,
            idempotency_keys.c.key,
        )
        .limit(limit)
    )
    return [(row[0], row[1], row[2]) for row in rows]


async def delete_idempotency_keys(w: Write, keys: Sequence[IdempotencyKey]) -> int:
    return await w.execute(delete(idempotency_keys).where(_IDEMPOTENCY_KEY.in_(list(keys))))
