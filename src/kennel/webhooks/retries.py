"""When a failed delivery is tried again.

A schedule lists the delay before each attempt, the first included: Svix's default
sends at once, then waits 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h, so an event
gets 8 attempts over about 27.6 hours. Each wait is jittered by up to ±10 % so that
the deliveries failed by one outage do not all come back in the same second.

A `Retry-After` answer is a floor, never a shortcut: the next wait is the larger of
the jittered scheduled delay and Retry-After (capped at `cap`, so a receiver cannot
park an event for days). It still uses up one attempt of the schedule.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = [
    "DEFAULT_RETRY_AFTER_CAP_SECONDS",
    "JITTER",
    "next_delay",
    "parse_retry_after",
]

DEFAULT_RETRY_AFTER_CAP_SECONDS = 3600.0
JITTER = 0.10


def next_delay(
    schedule: Sequence[float],
    attempt_number: int,
    retry_after: float | None,
    *,
    cap: float,
    rng: random.Random,
) -> float | None:
    """Seconds to wait after attempt `attempt_number` (1-based) failed; None after the last."""
    if attempt_number < 1:
        raise ValueError("attempt numbers start at 1")
    if attempt_number >= len(schedule):
        return None
    delay = schedule[attempt_number] * rng.uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None and math.isfinite(retry_after):
        delay = max(delay, min(max(retry_after, 0.0), cap))
    return max(delay, 0.0)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delay-seconds or HTTP-date); None when absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # HTTP-dates are GMT; "-0000" parses as naive
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)
