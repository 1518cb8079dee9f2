"""When a turn ends: the listeners that hear of it, each a DBOS workflow of its own.

A listener is registered once at import (`webhooks`, `mail`) with the question it asks first:
does this turn concern it (the worker has a webhook; the task came by mail)? When a turn ends,
completed, error or aborted, one DBOS step asks every listener in one read, and the listeners
that answered yes are started with the workflow ids `<turn id>:<listener>`. The turn's own
workflow does this (DBOS records the step's answer and the starts, so a crash between the
turn's end and its listeners loses nothing and starts nothing twice); a turn aborted from
outside (archive) is announced by the code that aborted it, with the same ids. A listener that
is slow or fails holds up neither the turn nor the next one, nor the other listeners.

Asking first is what keeps a turn cheap: a workflow start costs several system-database
writes, and most turns have no webhook and did not come by mail.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, NamedTuple

from dbos import DBOS, SetWorkflowID

from kennel import runtime
from kennel.db import Read

__all__ = ["notify_turn_ended", "register_turn_listener"]

TurnListener = Callable[[str], Coroutine[Any, Any, Any]]
Concerns = Callable[[Read, str], Awaitable[bool]]


class _Listener(NamedTuple):
    workflow: TurnListener
    concerns: Concerns


_listeners: dict[str, _Listener] = {}


def register_turn_listener(name: str, workflow: TurnListener, concerns: Concerns) -> None:
    """Have the DBOS workflow `workflow(turn_id)` run once for every turn that ends and that
    `concerns(r, turn_id)` (a read, no writes) answers True for."""
    known = _listeners.get(name)
    if known is not None and known != (workflow, concerns):
        raise ValueError(f"a turn listener named {name!r} is registered already")
    _listeners[name] = _Listener(workflow, concerns)


async def notify_turn_ended(turn_ids: Iterable[str]) -> None:
    """Start the listeners each turn concerns (idempotent: the workflow ids are fixed)."""
    turn_ids = list(turn_ids)
    if not turn_ids or not _listeners:
        return
    for turn_id, names in zip(turn_ids, await _concerned(turn_ids), strict=True):
        for name in names:
            with SetWorkflowID(f"{turn_id}:{name}"):
                await DBOS.start_workflow_async(_listeners[name].workflow, turn_id)


@DBOS.step()
async def _concerned(turn_ids: list[str]) -> list[list[str]]:
    """Per turn, the names of the listeners it concerns, read in one block."""
    async with runtime.current().db.read() as r:
        return [
            [name for name, listener in _listeners.items() if await listener.concerns(r, turn_id)]
            for turn_id in turn_ids
        ]
