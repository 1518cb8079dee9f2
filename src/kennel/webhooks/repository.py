"""The only code that queries webhooks, their events and delivery attempts."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy import bindparam, func, select

from kennel.core.timestamps import utcnow
from kennel.db import Read, Write, select_rows
from kennel.models import tasks, turns, webhook_events, webhook_executions, webhooks

__all__ = [
    "FINISHED",
    "IN_FLIGHT",
    "EventRow",
    "ExecutionRow",
    "WebhookRow",
    "begin_execution",
    "by_worker",
    "claim_execution",
    "drop_execution",
    "event",
    "event_bodies",
    "event_of_turn",
    "execution",
    "finish_execution",
    "has_webhook_for_turn",
    "insert_event",
    "page_of_executions",
    "remove",
    "rotate_token",
    "set_url",
]


class WebhookRow(NamedTuple):
    worker_id: str
    url: str
    token: str
    previous_token: str | None
    previous_token_until: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime


class EventRow(NamedTuple):
    id: str
    worker_id: str
    turn_id: str
    type: str
    body: str
    webhook_version: int
    task_id: str
    task_title: str
    created_at: datetime


IN_FLIGHT = ("pending", "sending")
FINISHED = ("success", "error", "unknown")


class ExecutionRow(NamedTuple):
    """An attempt, with the task of its event. `request_status`: pending (written, not sent
    yet), sending, success, error, or unknown (cut off by a crash while it was being sent)."""

    id: str
    event_id: str
    worker_id: str
    attempt: int
    url: str
    request_status: str
    response_status: int | None
    error_message: str | None
    response_excerpt: str
    duration_ms: int
    created_at: datetime
    task_id: str
    task_title: str


_BY_WORKER = select_rows(WebhookRow, webhooks).where(webhooks.c.worker_id == bindparam("worker_id"))
_WEBHOOK_OF_TURN = (
    select(webhooks.c.worker_id)
    .select_from(turns.join(tasks, tasks.c.id == turns.c.task_id))
    .join(webhooks, webhooks.c.worker_id == tasks.c.worker_id)
    .where(turns.c.id == bindparam("turn_id"), webhooks.c.url != "")  # "": removed
)
_EVENT = select_rows(EventRow, webhook_events).where(webhook_events.c.id == bindparam("event_id"))
_EVENT_OF_TURN = select_rows(EventRow, webhook_events).where(
    webhook_events.c.worker_id == bindparam("worker_id"),
    webhook_events.c.turn_id == bindparam("turn_id"),
)
_EXECUTIONS = select(
    *(webhook_executions.c[name] for name in ExecutionRow._fields[:-2]),
    webhook_events.c.task_id,
    webhook_events.c.task_title,
).join(webhook_events, webhook_events.c.id == webhook_executions.c.event_id)
_LAST_ATTEMPT = select(func.max(webhook_executions.c.attempt)).where(
    webhook_executions.c.event_id == bindparam("event_id")
)
_STATUS = select(webhook_executions.c.request_status).where(
    webhook_executions.c.id == bindparam("execution_id")
)


async def by_worker(r: Read, worker_id: str) -> WebhookRow | None:
    """The worker's webhook, or None when it has none (or it was removed)."""
    row = await r.first(_BY_WORKER, {"worker_id": worker_id})
    return WebhookRow._make(row) if row and row.url else None


async def has_webhook_for_turn(r: Read, turn_id: str) -> bool:
    """Whether the worker of the turn's task has a webhook now."""
    return await r.first(_WEBHOOK_OF_TURN, {"turn_id": turn_id}) is not None


async def set_url(w: Write, worker_id: str, url: str, new_token: str) -> WebhookRow:
    """Point the worker's webhook at `url`, keeping its token (`new_token` when it has none);
    a changed URL is a new version."""
    now = utcnow()
    found = await w.first(_BY_WORKER, {"worker_id": worker_id})
    if found is None:
        row = WebhookRow(worker_id, url, new_token, None, None, 1, now, now)
        await w.execute(sa.insert(webhooks), row._asdict())
        return row
    current = WebhookRow._make(found)
    row = current._replace(url=url, updated_at=now, version=current.version + (url != current.url))
    if not current.token:  # removed before: a new token
        row = row._replace(token=new_token, previous_token=None, previous_token_until=None)
    await w.execute(
        sa.update(webhooks).where(webhooks.c.worker_id == worker_id).values(**row._asdict())
    )
    return row


async def remove(w: Write, worker_id: str) -> bool:
    """Remove the webhook and its tokens. The row stays, with a new version, so that retries of
    earlier events stop even if a webhook is set again."""
    statement = (
        sa.update(webhooks)
        .where(webhooks.c.worker_id == worker_id, webhooks.c.url != "")
        .values(
            url="",
            token="",
            previous_token=None,
            previous_token_until=None,
            version=webhooks.c.version + 1,
            updated_at=utcnow(),
        )
    )
    return bool(await w.execute(statement))


async def rotate_token(
    w: Write, worker_id: str, token: str, previous_until: datetime
) -> WebhookRow | None:
    current = await by_worker(w, worker_id)
    if current is None:
        return None
    row = current._replace(
        token=token,
        previous_token=current.token,
        previous_token_until=previous_until,
        updated_at=utcnow(),
    )
    await w.execute(
        sa.update(webhooks).where(webhooks.c.worker_id == worker_id).values(**row._asdict())
    )
    return row


async def event(r: Read, event_id: str) -> EventRow | None:
    row = await r.first(_EVENT, {"event_id": event_id})
    return EventRow._make(row) if row else None


async def event_bodies(r: Read, worker_id: str, event_ids: list[str]) -> dict[str, str]:
    """The request bodies of the worker's events of these ids (an event's body is what each
    of its attempts sent, byte for byte)."""
    if not event_ids:
        return {}
    rows = await r.all(
        select(webhook_events.c.id, webhook_events.c.body).where(
            webhook_events.c.worker_id == worker_id, webhook_events.c.id.in_(event_ids)
        )
    )
    return {row.id: row.body for row in rows}


async def event_of_turn(r: Read, worker_id: str, turn_id: str) -> EventRow | None:
    row = await r.first(_EVENT_OF_TURN, {"worker_id": worker_id, "turn_id": turn_id})
    return EventRow._make(row) if row else None


async def insert_event(w: Write, row: EventRow) -> None:
    await w.execute(sa.insert(webhook_events), row._asdict())


async def begin_execution(w: Write, row: ExecutionRow) -> ExecutionRow:
    """Write the attempt as `pending`, numbered after the event's latest (`row.attempt` is
    ignored); the row already written under that id, if there is one (a step run again)."""
    found = await w.first(_EXECUTIONS.where(webhook_executions.c.id == row.id))
    if found is not None:
        return ExecutionRow._make(found)
    last = await w.scalar(_LAST_ATTEMPT, {"event_id": row.event_id})
    row = row._replace(attempt=int(last or 0) + 1, request_status="pending")
    values = row._asdict()
    del values["task_id"], values["task_title"]  # the event's
    await w.execute(sa.insert(webhook_executions), values)
    return row


async def claim_execution(w: Write, execution_id: str) -> str:
    """Mark a pending attempt as being sent: "claimed"; "cut_off" when it was being sent
    already (the process sending it stopped); "gone" when it was finished or dropped."""
    claimed = await w.execute(
        sa.update(webhook_executions)
        .where(
            webhook_executions.c.id == execution_id,
            webhook_executions.c.request_status == "pending",
        )
        .values(request_status="sending")
    )
    if claimed:
        return "claimed"
    status = await w.scalar(_STATUS, {"execution_id": execution_id})
    return "cut_off" if status == "sending" else "gone"


async def finish_execution(
    w: Write,
    execution_id: str,
    *,
    request_status: str,
    response_status: int | None,
    error_message: str | None,
    response_excerpt: str,
    duration_ms: int,
) -> bool:
    """Record how an attempt went; a finished attempt is never rewritten (False)."""
    statement = (
        sa.update(webhook_executions)
        .where(
            webhook_executions.c.id == execution_id,
            webhook_executions.c.request_status.in_(IN_FLIGHT),
        )
        .values(
            request_status=request_status,
            response_status=response_status,
            error_message=error_message,
            response_excerpt=response_excerpt,
            duration_ms=duration_ms,
        )
    )
    return bool(await w.execute(statement))


async def drop_execution(w: Write, execution_id: str) -> None:
    """Delete an attempt that was written but will not be sent (its webhook changed)."""
    await w.execute(
        sa.delete(webhook_executions).where(
            webhook_executions.c.id == execution_id,
            webhook_executions.c.request_status == "pending",
        )
    )


async def execution(r: Read, worker_id: str, execution_id: str) -> ExecutionRow | None:
    row = await r.first(
        _EXECUTIONS.where(
            webhook_executions.c.worker_id == worker_id, webhook_executions.c.id == execution_id
        )
    )
    return ExecutionRow._make(row) if row else None


async def page_of_executions(
    r: Read, worker_id: str, *, page: int, size: int, in_flight: bool = False
) -> tuple[list[ExecutionRow], int]:
    """A page of the worker's delivery attempts, newest first, and how many there are; those
    still being sent only with `in_flight`."""
    where = webhook_executions.c.worker_id == worker_id
    if not in_flight:
        where &= webhook_executions.c.request_status.in_(FINISHED)
    total = await r.scalar(select(func.count()).where(where))
    rows = await r.all(
        _EXECUTIONS.where(where)
        .order_by(webhook_executions.c.created_at.desc(), webhook_executions.c.id.desc())
        .offset((page - 1) * size)
        .limit(size)
    )
    return [ExecutionRow._make(row) for row in rows], int(total or 0)
