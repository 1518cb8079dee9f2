"""The one way tests wait for something that happens in the background: poll until it holds.

`eventually` for async tests (the probe may be sync or async), `wait_until` for the
synchronous end-to-end tests that drive a live server through the SDK.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

__all__ = ["eventually", "wait_until"]


async def eventually(
    probe: Callable[[], Any],
    done: Callable[[Any], bool] = bool,
    what: str = "the condition",
    *,
    timeout: float = 20.0,
    interval: float = 0.05,
) -> Any:
    """Call `probe` until `done(value)` (by default: until the value is truthy) and return the
    value; fail naming `what` and the last value after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if done(value):
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}; last: {value!r}"
        await asyncio.sleep(interval)


def wait_until(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Call `check` until it returns something truthy, and return it (blocking)."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}; last: {value!r}"
        time.sleep(0.1)
    return value
