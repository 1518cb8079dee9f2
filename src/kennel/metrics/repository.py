"""The only query of the metrics: the turns in flight, read when `/metrics` is scraped."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import func, select, text

from kennel.db import Read
from kennel.models import turns

__all__ = ["InFlight", "in_flight"]


class InFlight(NamedTuple):
    """Turns waiting (`pending`) and running, in every process sharing the database."""

    pending: int
    running: int
    oldest_pending_at: datetime | None


# The predicate is the very text of `ix_turns_in_flight`'s (migration 0013), not bound
# parameters: SQLite uses a partial index only when the query's WHERE names its terms as
# written, so the count reads that small index and never the table of all turns ever run.
_IN_FLIGHT = text("status IN ('pending', 'running')")
_BY_STATUS = (
    select(turns.c.status, func.count().label("n"), func.min(turns.c.created_at).label("oldest"))
    .where(_IN_FLIGHT)
    .group_by(turns.c.status)
)


async def in_flight(r: Read) -> InFlight:
    found = {row.status: row for row in await r.all(_BY_STATUS)}
    pending = found.get("pending")
    running = found.get("running")
    return InFlight(
        pending=pending.n if pending is not None else 0,
        running=running.n if running is not None else 0,
        oldest_pending_at=pending.oldest if pending is not None else None,
    )
