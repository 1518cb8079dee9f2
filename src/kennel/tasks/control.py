"""Ending turns: record the end with the listeners it concerns; stop aborted turns' workflows."""

from __future__ import annotations

from typing import Any

from dbos import DBOS

from kennel.db import Write
from kennel.metrics import record_turn_end
from kennel.tasks import listeners, waiters
from kennel.tasks import repository as repo
from kennel.workers.events import AfterCommit, on_worker_deleted

__all__ = ["abort_turn", "abort_worker_turns", "cancel_turn_workflows", "end_turn"]


async def end_turn(
    w: Write, turn_id: str, status: str, values: dict[str, Any], *, only_from: tuple[str, ...]
) -> list[str] | None:
    """Record the end of a turn in one of the `only_from` states, with the listeners that end
    concerns (asked in the same block, so a turn recovered after its end starts the same ones);
    those names, for `listeners.start_listeners` after the commit, or None when it had ended
    already."""
    concerned = await listeners.concerned(w, turn_id)
    ended = await repo.finish_turn(
        w, turn_id, status, values, only_from=only_from, listeners=concerned
    )
    return concerned if ended else None


async def abort_turn(w: Write, turn_id: str, reason: str) -> list[str] | None:
    """End a pending or running turn as aborted; as `end_turn`."""
    values = {"error_code": "aborted", "error_message": reason}
    return await end_turn(w, turn_id, "aborted", values, only_from=repo.IN_FLIGHT)


async def abort_worker_turns(w: Write, worker_id: str, reason: str) -> dict[str, list[str]]:
    """Abort every turn in flight on the worker; the listeners of each it aborted, by id."""
    aborted = {}
    for turn_id in await repo.in_flight_turn_ids(w, worker_id=worker_id):
        concerned = await abort_turn(w, turn_id, reason)
        if concerned is not None:
            aborted[turn_id] = concerned
    return aborted


async def cancel_turn_workflows(aborted: dict[str, list[str]]) -> None:
    """Once the aborts are committed: stop the turns' workflows, wake their waiters and start
    their listeners."""
    for turn_id, concerned in aborted.items():
        record_turn_end("aborted", "aborted")
        await DBOS.cancel_workflow_async(turn_id)
        waiters.notify(turn_id)
        await listeners.start_listeners(turn_id, concerned)


async def _abort_turns_of_deleted(w: Write, worker_id: str) -> AfterCommit:
    aborted = await abort_worker_turns(w, worker_id, "The worker was deleted.")
    return lambda: cancel_turn_workflows(aborted)


on_worker_deleted("tasks", _abort_turns_of_deleted)
