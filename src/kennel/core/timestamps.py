"""The contract's time format: ISO 8601 in UTC with a `Z` and milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["iso_z", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso_z(moment: datetime) -> str:
    """`2026-11-29T15:04:05.123Z`."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
