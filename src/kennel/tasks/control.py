"""Stopping turns: abort them in the database, then cancel their workflows."""

from __future__ import annotations

from dbos import DBOS

from kennel.db import Write
from kennel.tasks import repository as repo
from kennel.tasks import waiters
from kennel.tasks.listeners import notify_turn_ended

__all__ = ["abort_worker_turns", "cancel_turn_workflows"]


async def abort_worker_turns(w: Write, worker_id: str, reason: str) -> list[str]:
    """Abort every turn in flight on the worker; the ids of those it aborted."""
    return [
        turn_id
        for turn_id in await repo.in_flight_turn_ids(w, worker_id=worker_id)
        if await repo.abort_turn(w, turn_id, reason)
    ]


async def cancel_turn_workflows(turn_ids: list[str]) -> None:
    """Stop aborted turns' workflows (once the abort is committed), wake their waiters and
    tell the listeners that the turns ended."""
    for turn_id in turn_ids:
        await DBOS.cancel_workflow_async(turn_id)
        waiters.notify(turn_id)
    await notify_turn_ended(turn_ids)
