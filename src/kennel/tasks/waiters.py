"""Process-local wake-ups for requests waiting on a turn that this process runs.

The database stays the truth: a waiter that is never notified (the turn ran in another
process) falls back to polling the workflow's result.
"""

from __future__ import annotations

import asyncio

__all__ = ["forget", "notify", "wait"]

_waiting: dict[str, set[asyncio.Future[None]]] = {}


def wait(turn_id: str) -> asyncio.Future[None]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    _waiting.setdefault(turn_id, set()).add(future)
    return future


def forget(turn_id: str, future: asyncio.Future[None]) -> None:
    futures = _waiting.get(turn_id)
    if futures is not None:
        futures.discard(future)
        if not futures:
            del _waiting[turn_id]


def notify(turn_id: str) -> None:
    for future in _waiting.pop(turn_id, ()):
        if not future.done():
            future.get_loop().call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
