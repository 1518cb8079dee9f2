"""The only code that queries mail: messages taken in, their threads, allowed senders."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy import bindparam, func, select

from kennel.core.timestamps import utcnow
from kennel.db import Read, Write, select_rows
from kennel.models import mail_messages, mail_threads, users, worker_mail_senders, workers
from kennel.workers.repository import VISIBLE_TO_CALLER, WorkerRow

__all__ = [
    "MessageRow",
    "allowed_senders",
    "insert_message",
    "is_mail_turn",
    "message",
    "message_of_turn",
    "messages",
    "organization_users_with_email",
    "set_allowed_senders",
    "set_outcome",
    "set_reply",
    "stored_ids",
    "task_of_thread",
    "thread",
    "visible_to_user",
    "worker_by_local_part",
]


class MessageRow(NamedTuple):
    id: str
    worker_id: str
    envelope_from: str
    recipient: str
    peer: str
    raw: bytes
    status: str
    reason: str | None
    message_id: str | None
    sender: str | None
    subject: str | None
    task_id: str | None
    turn_id: str | None
    reply_status: str | None
    reply_message_id: str | None
    reply_error: str | None
    received_at: datetime


_MESSAGES = select_rows(MessageRow, mail_messages)
_MAIL_TURN = select(mail_messages.c.id).where(mail_messages.c.turn_id == bindparam("turn_id"))
_WORKER_BY_LOCAL_PART = select_rows(WorkerRow, workers).where(
    func.lower(workers.c.email_local_part) == bindparam("local_part"),
    workers.c.deleted_at.is_(None),
)


async def worker_by_local_part(r: Read, local_part: str) -> WorkerRow | None:
    """The live worker whose address has that local part (compared in lower case)."""
    row = await r.first(_WORKER_BY_LOCAL_PART, {"local_part": local_part.lower()})
    return WorkerRow._make(row) if row else None


async def organization_users_with_email(r: Read, organization_id: str, email: str) -> list[str]:
    """Ids of the organization's users with that address (compared in lower case)."""
    rows = await r.all(
        select(users.c.id).where(
            users.c.organization_id == organization_id, func.lower(users.c.email) == email.lower()
        )
    )
    return [row.id for row in rows]


async def visible_to_user(r: Read, worker_id: str, organization_id: str, user_id: str) -> bool:
    found = await r.first(
        select(workers.c.id).where(workers.c.id == worker_id, VISIBLE_TO_CALLER),
        {"caller_organization_id": organization_id, "caller_user_id": user_id},
    )
    return found is not None


async def allowed_senders(r: Read, worker_id: str) -> list[str]:
    rows = await r.all(
        select(worker_mail_senders.c.pattern)
        .where(worker_mail_senders.c.worker_id == worker_id)
        .order_by(worker_mail_senders.c.pattern)
    )
    return [row.pattern for row in rows]


async def set_allowed_senders(w: Write, worker_id: str, patterns: list[str]) -> None:
    await w.execute(
        sa.delete(worker_mail_senders).where(worker_mail_senders.c.worker_id == worker_id)
    )
    if patterns:
        now = utcnow()
        await w.execute(
            sa.insert(worker_mail_senders),
            [{"worker_id": worker_id, "pattern": p, "created_at": now} for p in patterns],
        )


async def insert_message(w: Write, row: MessageRow) -> None:
    await w.execute(sa.insert(mail_messages), row._asdict())


async def message(r: Read, message_id: str) -> MessageRow | None:
    row = await r.first(_MESSAGES.where(mail_messages.c.id == message_id))
    return MessageRow._make(row) if row else None


async def message_of_turn(r: Read, turn_id: str) -> MessageRow | None:
    row = await r.first(_MESSAGES.where(mail_messages.c.turn_id == turn_id))
    return MessageRow._make(row) if row else None


async def is_mail_turn(r: Read, turn_id: str) -> bool:
    """Whether the turn was started by a message (its answer is mailed back)."""
    return await r.first(_MAIL_TURN, {"turn_id": turn_id}) is not None


async def stored_ids(r: Read, *, received_before: datetime | None = None) -> list[str]:
    """Messages taken in whose intake has not decided yet (a crash right after the 250), all
    or those received before `received_before`."""
    query = select(mail_messages.c.id).where(mail_messages.c.status == "stored")
    if received_before is not None:
        query = query.where(mail_messages.c.received_at < received_before)
    rows = await r.all(query)
    return [row.id for row in rows]


async def messages(r: Read, *, failed_only: bool, limit: int = 200) -> list[MessageRow]:
    query = _MESSAGES.order_by(mail_messages.c.received_at.desc()).limit(limit)
    if failed_only:
        query = query.where(mail_messages.c.status.in_(("refused", "failed")))
    return [MessageRow._make(row) for row in await r.all(query)]


async def set_outcome(
    w: Write,
    message_id: str,
    status: str,
    *,
    reason: str | None = None,
    header_id: str | None = None,
    sender: str | None = None,
    subject: str | None = None,
    task_id: str | None = None,
    turn_id: str | None = None,
) -> None:
    values = {"status": status, "reason": reason}
    for column, value in (
        ("message_id", header_id),
        ("sender", sender),
        ("subject", subject),
        ("task_id", task_id),
        ("turn_id", turn_id),
    ):
        if value is not None:
            values[column] = value
    await w.execute(
        sa.update(mail_messages).where(mail_messages.c.id == message_id).values(**values)
    )


async def set_reply(
    w: Write,
    message_id: str,
    status: str,
    *,
    header_id: str | None = None,
    error: str | None = None,
) -> None:
    values: dict[str, str | None] = {"reply_status": status, "reply_error": error}
    if header_id is not None:
        values["reply_message_id"] = header_id
    await w.execute(
        sa.update(mail_messages).where(mail_messages.c.id == message_id).values(**values)
    )


async def thread(w: Write, worker_id: str, header_id: str, task_id: str) -> None:
    """Note that the Message-ID belongs to the task's thread (kept if it is noted already)."""
    found = await w.first(
        select(mail_threads.c.task_id).where(
            mail_threads.c.worker_id == worker_id, mail_threads.c.message_id == header_id
        )
    )
    if found is None:
        await w.execute(
            sa.insert(mail_threads),
            {
                "worker_id": worker_id,
                "message_id": header_id,
                "task_id": task_id,
                "created_at": utcnow(),
            },
        )


async def task_of_thread(r: Read, worker_id: str, header_ids: tuple[str, ...]) -> str | None:
    """The task (internal id) of the first of these Message-IDs that belongs to one."""
    if not header_ids:
        return None
    rows = await r.all(
        select(mail_threads.c.message_id, mail_threads.c.task_id).where(
            mail_threads.c.worker_id == worker_id, mail_threads.c.message_id.in_(header_ids)
        )
    )
    found = {row.message_id: row.task_id for row in rows}
    return next((found[h] for h in header_ids if h in found), None)
