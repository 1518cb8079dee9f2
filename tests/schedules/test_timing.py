"""Due-time arithmetic: cron across daylight-saving changes, intervals, the names."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kennel.core.parsers import parse_timezone
from kennel.schedules.timing import (
    MISSED_COUNT_LIMIT,
    count_due,
    due_after,
    next_cron,
    next_interval,
    parse_cron,
    upcoming_of,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")


def ticks(expression: str, zone: ZoneInfo, start: datetime, count: int) -> list[str]:
    found, current = [], start
    for _ in range(count):
        current = next_cron(expression, zone, current)
        found.append(current.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z"))
    return found


class TestParse:
    @pytest.mark.parametrize(
        ("given_text", "normal"),
        [
            ("@daily", "0 0 * * *"),
            ("@HOURLY", "0 * * * *"),
            ("@weekly", "0 0 * * 0"),
            ("@monthly", "0 0 1 * *"),
            ("@yearly", "0 0 1 1 *"),
            ("  */5   9-17 * * mon-fri ", "*/5 9-17 * * mon-fri"),
        ],
    )
    def test_accepted(self, given_text: str, normal: str) -> None:
        assert parse_cron(given_text) == normal

    @pytest.mark.parametrize(
        ("text", "says"),
        [
            ("0 * * * * *", "six fields"),
            ("* * * *", "five fields"),
            ("60 * * * *", "minute"),
            ("* 24 * * *", "hour"),
            ("* * 30 2 *", "day-of-month"),
            ("@sometimes", "five fields"),
            ("", "five fields"),
        ],
    )
    def test_refused_with_a_reason(self, text: str, says: str) -> None:
        with pytest.raises(ValueError, match=says):
            parse_cron(text)

    @pytest.mark.parametrize("name", ["", "Mars/Olympus", "../etc/passwd", "x" * 200, "utc+1"])
    def test_unknown_zones(self, name: str) -> None:
        with pytest.raises(ValueError, match="IANA"):
            parse_timezone(name)


class TestCron:
    def test_the_next_tick_is_strictly_later(self) -> None:
        at = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
        assert next_cron("0 12 * * *", ZoneInfo("UTC"), at) == datetime(2026, 12, 3, 12, tzinfo=UTC)
        assert next_cron("*/15 * * * *", ZoneInfo("UTC"), at) == at + timedelta(minutes=15)

    def test_berlin_spring_forward_runs_the_skipped_job_once_at_the_jump(self) -> None:
        # 2026-03-29: 02:00 CET becomes 03:00 CEST.
        start = datetime(2026, 3, 27, tzinfo=UTC)
        assert ticks("30 2 * * *", BERLIN, start, 3) == [
            "2026-03-27 02:30 CET",
            "2026-03-28 02:30 CET",
            "2026-03-29 03:00 CEST",
        ]

    def test_berlin_fall_back_runs_a_fixed_time_job_once(self) -> None:
        # 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
        start = datetime(2026, 10, 24, 12, tzinfo=UTC)
        assert ticks("30 2 * * *", BERLIN, start, 2) == [
            "2026-10-25 02:30 CEST",
            "2026-10-26 02:30 CET",
        ]

    def test_a_frequent_job_runs_at_every_real_minute_that_matches(self) -> None:
        start = datetime(2026, 10, 24, 23, 0, tzinfo=UTC)  # 01:00 CEST
        assert ticks("*/30 * * * *", BERLIN, start, 5) == [
            "2026-10-25 01:30 CEST",
            "2026-10-25 02:00 CEST",
            "2026-10-25 02:30 CEST",
            "2026-10-25 02:00 CET",
            "2026-10-25 02:30 CET",
        ]

    def test_new_york_changes(self) -> None:
        spring = datetime(2026, 3, 7, 12, tzinfo=UTC)  # 2026-03-08 02:00 EST -> 03:00 EDT
        assert ticks("15 2 * * *", NEW_YORK, spring, 2) == [
            "2026-03-08 03:00 EDT",
            "2026-03-09 02:15 EDT",
        ]
        fall = datetime(2026, 10, 31, 12, tzinfo=UTC)  # 2026-11-01 02:00 EDT -> 01:00 EST
        assert ticks("30 1 * * *", NEW_YORK, fall, 2) == [
            "2026-11-01 01:30 EDT",
            "2026-11-02 01:30 EST",
        ]

    def test_upcoming_five(self) -> None:
        first = next_cron("0 9 * * mon", BERLIN, datetime(2026, 12, 2, tzinfo=UTC))
        schedule = SimpleNamespace(
            kind="cron",
            cron="0 9 * * mon",
            timezone=None,
            anchor=first,
            interval_seconds=None,
            next_run_at=first,
        )
        times = upcoming_of(schedule, default_zone="Europe/Berlin")
        assert [t.astimezone(BERLIN).strftime("%a %d %H:%M") for t in times] == [
            "Mon 07 09:00",
            "Mon 14 09:00",
            "Mon 21 09:00",
            "Mon 28 09:00",
            "Mon 04 09:00",
        ]


class TestInterval:
    def test_anchor_plus_k_n_never_drifts(self) -> None:
        anchor = datetime(2026, 1, 1, 0, 0, 0, 250_000, tzinfo=UTC)
        late = anchor + timedelta(seconds=60 * 7 + 59)  # a firing 59 s late
        assert next_interval(anchor, 60, late) == anchor + timedelta(minutes=8)
        assert next_interval(anchor, 60, anchor) == anchor + timedelta(minutes=1)
        assert next_interval(anchor, 60, anchor - timedelta(hours=1)) == anchor


# -- the property: five years of daylight-saving changes -------------------------------------


def _reference(expression: str, zone: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """Due times by brute force, minute by minute of real time, by the documented rules.

    Frequent jobs (minute or hour field `*...`): every real minute whose wall-clock time
    matches. Fixed-time jobs: each wall-clock match once (the first real minute showing it),
    and a match the clock skipped at the first real minute after the jump."""
    from cronsim import CronSim

    fields = expression.split(" ")
    fixed = not (fields[0].startswith("*") or fields[1].startswith("*"))
    matches: set[datetime] = set()
    wall_start = start.astimezone(zone).replace(tzinfo=None) - timedelta(days=1)
    for wall in CronSim(expression, wall_start):
        if wall > end.astimezone(zone).replace(tzinfo=None) + timedelta(days=1):
            break
        matches.add(wall)
    found: list[datetime] = []
    seen_walls: set[datetime] = set()
    minute = start.replace(second=0, microsecond=0) + timedelta(minutes=1)
    previous_wall = (minute - timedelta(minutes=1)).astimezone(zone).replace(tzinfo=None)
    while minute <= end:
        wall = minute.astimezone(zone).replace(tzinfo=None)
        jumped = (
            [w for w in matches if previous_wall < w < wall]
            if wall - previous_wall > timedelta(minutes=1)
            else []
        )
        if fixed:
            if wall in matches and wall not in seen_walls:
                found.append(minute)
            elif jumped and not any(w in seen_walls for w in jumped):
                found.append(minute)
                seen_walls.update(jumped)
            seen_walls.add(wall)
        elif wall in matches:
            found.append(minute)
        previous_wall = wall
        minute += timedelta(minutes=1)
    return found


_ZONES = [BERLIN, NEW_YORK, LORD_HOWE]
_CHANGES = [  # a day around each change, five years long
    (zone, moment)
    for zone in _ZONES
    for moment in (
        datetime(year, month, 1, tzinfo=UTC) for year in range(2026, 2031) for month in range(1, 13)
    )
    if zone.utcoffset(moment.replace(tzinfo=None))
    != zone.utcoffset((moment + timedelta(days=31)).replace(tzinfo=None))
]


@settings(max_examples=40, deadline=None)
@given(
    change=st.sampled_from(_CHANGES),
    minute=st.sampled_from(["0", "15", "30", "45", "*/15", "*/20", "5,35"]),
    hour=st.sampled_from(["0", "1", "2", "3", "*", "1-3", "*/2"]),
)
def test_no_due_time_doubled_lost_or_out_of_order(
    change: tuple[ZoneInfo, datetime], minute: str, hour: str
) -> None:
    zone, month_start = change
    expression = f"{minute} {hour} * * *"
    # The day of the change in that month, found by its offset.
    day = month_start
    while zone.utcoffset(day.replace(tzinfo=None)) == zone.utcoffset(
        month_start.replace(tzinfo=None)
    ):
        day += timedelta(days=1)
    start, end = day - timedelta(days=2), day + timedelta(days=1)
    found, current = [], start
    while True:
        current = next_cron(expression, zone, current)
        if current > end:
            break
        found.append(current)
    assert all(a < b for a, b in itertools.pairwise(found))  # strictly later, so no doubles
    assert found == _reference(expression, zone, start, end)


def _stepped(schedule: Any, after: datetime, until: datetime) -> int:
    """Due times in (after, until] found one `due_after` at a time: what count_due must say."""
    found, current = 0, after
    while (current := due_after(schedule, current, default_zone="UTC")) <= until:
        found += 1
    return found


@settings(max_examples=40, deadline=None)
@given(
    change=st.sampled_from(_CHANGES),
    minute=st.sampled_from(["0", "30", "*/15", "*/7", "5,35"]),
    hour=st.sampled_from(["1", "2", "*", "1-3", "*/2"]),
    offset=st.integers(min_value=0, max_value=3599),
)
def test_count_due_counts_what_stepping_finds_across_a_change(
    change: tuple[ZoneInfo, datetime], minute: str, hour: str, offset: int
) -> None:
    """The folded due times a late firing records, counted in one pass over a downtime that
    spans a daylight-saving change, are the ones the dispatcher would have stepped through."""
    zone, month_start = change
    day = month_start
    while zone.utcoffset(day.replace(tzinfo=None)) == zone.utcoffset(
        month_start.replace(tzinfo=None)
    ):
        day += timedelta(days=1)
    after = day - timedelta(days=1, seconds=offset)  # the change is in the day before `day`
    until = day + timedelta(seconds=offset)
    schedule = SimpleNamespace(
        kind="cron",
        cron=f"{minute} {hour} * * *",
        timezone=zone.key,
        anchor=after,
        interval_seconds=None,
    )
    assert count_due(schedule, after, until, default_zone="UTC") == _stepped(schedule, after, until)


class TestCountDue:
    def test_intervals_by_arithmetic(self) -> None:
        anchor = datetime(2026, 12, 1, 9, tzinfo=UTC)
        schedule = SimpleNamespace(
            kind="interval", interval_seconds=3600, anchor=anchor, cron=None, timezone=None
        )
        after = anchor + timedelta(hours=1)  # the due time that fired
        until = after + timedelta(hours=10, minutes=30)
        assert count_due(schedule, after, until, default_zone="UTC") == 10
        assert _stepped(schedule, after, until) == 10
        assert count_due(schedule, after, after + timedelta(minutes=59), default_zone="UTC") == 0
        before = anchor - timedelta(hours=2)  # the first due time is the anchor itself
        assert count_due(schedule, before, anchor, default_zone="UTC") == 1

    def test_one_shots_fold_nothing_and_counts_stop_at_the_limit(self) -> None:
        start = datetime(2026, 1, 1, tzinfo=UTC)
        one_shot = SimpleNamespace(
            kind="delayed", anchor=start, cron=None, timezone=None, interval_seconds=None
        )
        assert count_due(one_shot, start, start + timedelta(days=9), default_zone="UTC") == 0
        minutely = SimpleNamespace(
            kind="cron", cron="* * * * *", timezone=None, anchor=start, interval_seconds=None
        )
        year = start + timedelta(days=365)
        assert count_due(minutely, start, year, default_zone="UTC") == MISSED_COUNT_LIMIT
        assert count_due(minutely, start, start + timedelta(hours=1), default_zone="UTC") == 60
