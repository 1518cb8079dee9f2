"""Deleting a worker, told to the domains that keep something of it.

Workers know nothing of the domains above them (tasks, schedules, webhooks); each of those
subscribes here when it is imported, as the turn listeners do (`tasks.listeners`). A
subscriber is called in the write block that marks the worker deleted, so its changes commit
or roll back with the deletion; what must wait for the commit (stopping workflows) it returns
as a callable, run once the block has committed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from kennel.db import Write

__all__ = ["AfterCommit", "OnWorkerDeleted", "on_worker_deleted", "worker_deleted"]

AfterCommit = Callable[[], Awaitable[None]]
OnWorkerDeleted = Callable[[Write, str], Awaitable[AfterCommit | None]]

_subscribers: dict[str, OnWorkerDeleted] = {}


def on_worker_deleted(name: str, subscriber: OnWorkerDeleted) -> None:
    """Have `subscriber(w, worker_id)` called in the block of every worker's deletion."""
    known = _subscribers.get(name)
    if known is not None and known is not subscriber:
        raise ValueError(f"a subscriber named {name!r} is registered already")
    _subscribers[name] = subscriber


async def worker_deleted(w: Write, worker_id: str) -> list[AfterCommit]:
    """Tell every subscriber, in `w`; what to run once `w` has committed."""
    after = [await subscriber(w, worker_id) for subscriber in _subscribers.values()]
    return [a for a in after if a is not None]
