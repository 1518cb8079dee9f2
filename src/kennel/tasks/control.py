"""Stopping turns: abort them in the database, then cancel their workflows."""

from __future__ import annotations

from dbos import DBOS

from kennel.db import Database, Write
from kennel.tasks import listeners, waiters
from kennel.tasks import repository as repo

__all__ = ["abort_turn", "abort_worker_turns", "cancel_turn_workflows"]


async def abort_turn(w: Write, turn_id: str, reason: str) -> bool:
    """Abort the turn if it is in flight (with the listeners its end concerns); whether it was."""
    concerned = await listeners.concerned(w, turn_id)
    return await repo.abort_turn(w, turn_id, reason, listeners=concerned)


async def abort_worker_turns(w: Write, worker_id: str, reason: str) -> list[str]:
    """Abort every turn in flight on the worker; the ids of those it aborted."""
    return [
        turn_id
        for turn_id in await repo.in_flight_turn_ids(w, worker_id=worker_id)
        if await abort_turn(w, turn_id, reason)
    ]


async def cancel_turn_workflows(db: Database, turn_ids: list[str]) -> None:
    """Stop aborted turns' workflows (once the abort is committed), wake their waiters and
    start the listeners stored with their ends."""
    for turn_id in turn_ids:
        await DBOS.cancel_workflow_async(turn_id)
        waiters.notify(turn_id)
    await listeners.announce_ended(db, turn_ids)
