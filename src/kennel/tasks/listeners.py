"""When a turn ends: the listeners that hear of it, each a DBOS workflow of its own.

A listener is registered once at import (`webhooks`, `mail`) with the question it asks first:
does this turn concern it (the worker has a webhook; the task came by mail)? Whoever ends a
turn (its own workflow, an archive or delete that aborts it, the start-up sweep) does it with
`control.end_turn`, which asks every listener in the write block that records the end and
stores the answer with it (`turns.listeners`). After the commit, the listeners named there
are started with the workflow ids `<turn id>:<listener>`, so a start repeated after a crash
starts nothing twice; a turn's workflow recovered after its end starts them from the stored
answer, so nothing is lost either. A listener that is slow or fails holds up neither the turn
nor the next one, nor the other listeners.

Asking first is what keeps a turn cheap: a workflow start costs several system-database
writes, and most turns have no webhook and did not come by mail. Asking in the block that
ends the turn, rather than in a DBOS step of the turn's workflow, saves the step's two
system-database transactions on every turn.

The listeners are started outside the turn's workflow (in a context of their own), not as its
children: a child's start would be one of the turn's recorded operations, numbered after the
agent's steps, which a workflow recovered after the turn's end does not run again.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, NamedTuple

from dbos import DBOS, PropagateOtelContext, SetWorkflowID
from opentelemetry import context as otel_context

from kennel.db import Read

__all__ = ["concerned", "register_turn_listener", "start_listeners"]

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


async def concerned(r: Read, turn_id: str) -> list[str]:
    """The names of the listeners the turn concerns; asked in the block that ends it."""
    return [name for name, listener in _listeners.items() if await listener.concerns(r, turn_id)]


async def start_listeners(turn_id: str, names: Iterable[str]) -> None:
    """Start those listeners of the ended turn (idempotent: the workflow ids are fixed)."""
    trace_context = otel_context.get_current()
    for name in names:
        # A fresh context: not a child of the turn's workflow, if called from it (see above).
        start = _start(turn_id, name, trace_context)
        await asyncio.create_task(start, context=contextvars.Context())


async def _start(turn_id: str, name: str, trace_context: otel_context.Context) -> None:
    # The trace goes on, though: the listener's spans (a webhook's attempts) join the turn's.
    with SetWorkflowID(f"{turn_id}:{name}"), PropagateOtelContext(trace_context):
        await DBOS.start_workflow_async(_listeners[name].workflow, turn_id)
