"""The worker page's usage picture: credits per day as bars of an inline SVG, laid out here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

__all__ = ["Bar", "UsageChart", "usage_chart"]

_WIDTH = 300
_HEIGHT = 80
_TOP = 6  # room above the tallest bar
_GAP = 2


@dataclass(frozen=True, slots=True)
class Bar:
    day: date
    credits: int
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True, slots=True)
class UsageChart:
    bars: list[Bar]
    width: int
    height: int
    total: int
    peak: int

    @property
    def first_day(self) -> date | None:
        return self.bars[0].day if self.bars else None

    @property
    def last_day(self) -> date | None:
        return self.bars[-1].day if self.bars else None


def usage_chart(days: Sequence[tuple[date, int]]) -> UsageChart:
    """One bar per day, oldest first, scaled to the busiest day; a day without credits keeps a
    one-unit stub so the axis reads as days."""
    peak = max((credits for _, credits in days), default=0)
    slot = _WIDTH / max(1, len(days))
    bars = []
    for index, (day, credits) in enumerate(days):
        height = (_HEIGHT - _TOP) * credits / peak if peak else 0.0
        height = max(height, 1.0)
        bars.append(
            Bar(
                day=day,
                credits=credits,
                x=round(index * slot + _GAP / 2, 2),
                y=round(_HEIGHT - height, 2),
                width=round(slot - _GAP, 2),
                height=round(height, 2),
            )
        )
    return UsageChart(bars, _WIDTH, _HEIGHT, sum(c for _, c in days), peak)
