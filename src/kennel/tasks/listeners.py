"""When a turn ends: the listeners that hear of it, each a DBOS workflow of its own.

A listener is registered once at import (`webhooks`, later `mail`) and is started for every
turn that ends, completed, error or aborted, with the workflow id `<turn id>:<listener>`. The
turn's own workflow starts them (DBOS records the start as a step of it, so a crash between the
turn's end and its listeners loses nothing and starts nothing twice); a turn aborted from
outside (archive) is announced by the code that aborted it, with the same ids. A listener that
is slow or fails holds up neither the turn nor the next one, nor the other listeners.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from dbos import DBOS, SetWorkflowID

__all__ = ["notify_turn_ended", "register_turn_listener"]

log = logging.getLogger("kennel.tasks")

TurnListener = Callable[[str], Coroutine[Any, Any, Any]]
_listeners: dict[str, TurnListener] = {}


def register_turn_listener(name: str, workflow: TurnListener) -> None:
    """Have the DBOS workflow `workflow(turn_id)` run once for every turn that ends."""
    if _listeners.get(name, workflow) is not workflow:
        raise ValueError(f"a turn listener named {name!r} is registered already")
    _listeners[name] = workflow


async def notify_turn_ended(turn_ids: Iterable[str]) -> None:
    """Start every listener for each turn (idempotent: the workflow ids are fixed)."""
    for turn_id in turn_ids:
        for name, workflow in _listeners.items():
            with SetWorkflowID(f"{turn_id}:{name}"):
                await DBOS.start_workflow_async(workflow, turn_id)
