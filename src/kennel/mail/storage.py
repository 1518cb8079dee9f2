"""Keeping what the front door accepts: one row per worker a message is for, before the 250.

`store` keeps the raw message with its envelope in the database and has the intake workflow
started, keyed by the stored row (`mail:<id>`). A crash right after the 250 leaves the row
`stored`, and the next start-up starts its workflow; a second front door (a provider's inbound
webhook) would call `store` the same way.
"""

from __future__ import annotations

from collections.abc import Callable

from kennel.core.ids import new_id
from kennel.core.runtime import Runtime
from kennel.core.timestamps import utcnow
from kennel.db import Database
from kennel.mail import repository as repo
from kennel.mail.policy import worker_of_address

__all__ = ["mark_for_replay", "store"]


async def store(
    rt: Runtime,
    envelope_from: str,
    recipients: list[str],
    raw: bytes,
    peer: str,
    *,
    start: Callable[[str], None],
) -> str:
    """Keep the message (one row per worker it is for), then have each intake started by
    `start(message_id)`, which must not wait for it."""
    rows = []
    for recipient in recipients:
        found = await worker_of_address(rt, recipient)
        if found is None:
            continue
        rows.append(
            repo.MessageRow(
                id=new_id("eml"),
                worker_id=found[0].id,
                envelope_from=envelope_from,
                recipient=recipient,
                peer=peer,
                raw=raw,
                status="stored",
                reason=None,
                message_id=None,
                sender=None,
                subject=None,
                task_id=None,
                turn_id=None,
                reply_status=None,
                reply_message_id=None,
                reply_error=None,
                received_at=utcnow(),
            )
        )
    async with rt.db.write() as w:
        for row in rows:
            await repo.insert_message(w, row)
    for row in rows:  # stored: an intake not started is started at the next start-up
        start(row.id)
    return rows[0].id if rows else "none"


async def mark_for_replay(db: Database, message_id: str) -> bool:
    """Set a kept message back to `stored` (for `kennel mail replay`); False when unknown."""
    async with db.write() as w:
        if await repo.message(w, message_id) is None:
            return False
        await repo.set_outcome(w, message_id, "stored")
    return True
