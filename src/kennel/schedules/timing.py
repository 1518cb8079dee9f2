"""When a schedule is due: cron expressions, intervals, one-shots, and the catch-up rule.

| kind | due times | after it fires |
| --- | --- | --- |
| scheduled | its `date` | done (leaves the list) |
| delayed | creation + `delayInSeconds` | done |
| cron | each tick, read in its time zone (see `next_cron`) | the next tick after now |
| interval | anchor + k·N seconds (anchor: creation) | the next anchor + k·N after now |

Intervals never drift by how late a firing was. Cron follows Debian cron's rules across
daylight-saving changes: a fixed-time job in an hour the clock skips runs once when it jumps,
one in an hour that repeats runs once; a job more often than hourly runs at every real minute
whose wall-clock time matches.

After downtime a one-shot fires at once, and a recurring schedule fires once, standing for every
tick it missed, then keeps its cadence (never once per missed tick). A firing more than
`CATCH_UP_SECONDS` late is recorded as `caught_up`, with how many later ticks it stood for
(`count_due`, up to `MISSED_COUNT_LIMIT`). All times are aware datetimes in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from kennel.core.parsers import parse_timezone

if TYPE_CHECKING:
    from kennel.schedules.repository import ScheduleRow

__all__ = [
    "CATCH_UP_SECONDS",
    "MAX_SECONDS",
    "MISSED_COUNT_LIMIT",
    "count_due",
    "due_after",
    "next_cron",
    "next_due",
    "next_interval",
    "parse_cron",
    "upcoming_of",
]

CATCH_UP_SECONDS = 5.0
MAX_SECONDS = 31_536_000  # a year: the longest delay or interval
# Counting a minutely cron's ticks cost 18 us each (85,000 in 1.5 s); a count stops here, at
# about 0.2 s, rather than hold the dispatcher's transaction through a very long downtime.
MISSED_COUNT_LIMIT = 10_000
_NAMES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def parse_cron(expression: str) -> str:
    """The expression, normalised (a name such as `@daily` as its five fields); ValueError
    with a readable reason when it is not a five-field cron expression that can ever run."""
    text = " ".join(expression.split())
    text = _NAMES.get(text.lower(), text)
    fields = text.split(" ")
    if len(fields) == 6:
        raise ValueError(
            "has six fields; Kennel takes five (minute hour day month weekday), no seconds"
        )
    if len(fields) != 5 or text.startswith("@"):
        raise ValueError(
            "must have five fields (minute hour day month weekday) or be one of "
            + ", ".join(sorted(_NAMES))
        )
    try:
        next(CronSim(text, _EPOCH))
    except (CronSimError, StopIteration, ValueError) as exc:
        raise ValueError(f"is not valid: {exc}") from None
    return text


def next_cron(expression: str, zone: ZoneInfo, after: datetime) -> datetime:
    """The first tick strictly after `after`, in UTC.

    A job at a fixed time (its minute and hour fields are not `*...`) follows Debian cron's
    rules, as `cronsim` implements them: once in a repeated hour, and at the jump in a skipped
    one. A job that runs more often than hourly is "scheduled normally", as Debian cron says:
    at every real minute whose wall-clock time matches, so twice in a repeated hour and not at
    all in a skipped one."""
    fields = expression.split(" ")
    if not (fields[0].startswith("*") or fields[1].startswith("*")):
        tick = next(CronSim(expression, after.astimezone(zone).replace(microsecond=0)))
        while tick.astimezone(UTC) <= after:  # `after` in the second pass of a repeated hour
            tick = next(CronSim(expression, tick))
        return tick.astimezone(UTC)
    # Wall-clock ticks from an hour back (a repeated hour's second pass), each at the real
    # instants it names: none when the clock skipped it, two when the hour repeats.
    start = (after.astimezone(zone) - timedelta(hours=1)).replace(tzinfo=None, microsecond=0)
    best: datetime | None = None
    for wall in CronSim(expression, start):
        if best is not None and wall > best.astimezone(zone).replace(tzinfo=None) + _AMBIGUITY:
            return best
        for fold in (0, 1):
            instant = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
            if instant.astimezone(zone).replace(tzinfo=None) != wall:
                continue  # the clock skipped this wall time
            if instant > after and (best is None or instant < best):
                best = instant
    raise AssertionError("unreachable: cron ticks never end")  # pragma: no cover


_AMBIGUITY = timedelta(hours=3)  # the most a wall-clock time can be out of step with the real one


def next_interval(anchor: datetime, seconds: int, after: datetime) -> datetime:
    """anchor + k·seconds, the first such moment strictly after `after`."""
    if after < anchor:
        return anchor
    periods = int((after - anchor).total_seconds() // seconds) + 1
    due = anchor + timedelta(seconds=periods * seconds)
    while due <= after:  # float rounding of very long spans
        due += timedelta(seconds=seconds)
    return due


def next_due(
    kind: str,
    *,
    after: datetime,
    cron: str | None = None,
    zone: ZoneInfo | None = None,
    anchor: datetime | None = None,
    interval_seconds: int | None = None,
) -> datetime | None:
    """The next due time of a recurring schedule strictly after `after`; None for one-shots."""
    if kind == "cron":
        assert cron is not None
        assert zone is not None
        return next_cron(cron, zone, after)
    if kind == "interval":
        assert anchor is not None
        assert interval_seconds is not None
        return next_interval(anchor, interval_seconds, after)
    return None


def due_after(schedule: ScheduleRow, after: datetime, *, default_zone: str) -> datetime | None:
    """The schedule's next due time strictly after `after`; None for one-shots. A cron
    expression is read in the schedule's zone, else in `default_zone`."""
    return next_due(
        schedule.kind,
        after=after,
        cron=schedule.cron,
        zone=_zone(schedule, default_zone),
        anchor=schedule.anchor,
        interval_seconds=schedule.interval_seconds,
    )


def count_due(
    schedule: ScheduleRow,
    after: datetime,
    until: datetime,
    *,
    default_zone: str,
    limit: int = MISSED_COUNT_LIMIT,
) -> int:
    """How many due times the schedule has in (`after`, `until`], counted up to `limit`; 0
    for one-shots. The same ticks `due_after` steps through, in one pass."""
    if until <= after:
        return 0
    if schedule.kind == "interval":
        assert schedule.interval_seconds is not None
        step = timedelta(seconds=schedule.interval_seconds)

        def index(at: datetime) -> int:  # of the last due time at or before `at`; -1: none
            return -1 if at < schedule.anchor else (at - schedule.anchor) // step

        return min(index(until) - index(after), limit)
    if schedule.kind != "cron":
        return 0
    assert schedule.cron is not None
    zone = _zone(schedule, default_zone)
    assert zone is not None
    fields = schedule.cron.split(" ")
    count = 0
    if not (fields[0].startswith("*") or fields[1].startswith("*")):  # fixed times: few a day
        tick = next_cron(schedule.cron, zone, after)
        while tick <= until and count < limit:
            count += 1
            tick = next_cron(schedule.cron, zone, tick)
        return count
    # As next_cron: each wall-clock tick at the real instants it names (none, one or two).
    start = (after.astimezone(zone) - timedelta(hours=1)).replace(tzinfo=None, microsecond=0)
    end = until.astimezone(zone).replace(tzinfo=None) + _AMBIGUITY
    for wall in CronSim(schedule.cron, start):
        if wall > end or count >= limit:
            break
        for instant in {wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)}:
            if after < instant <= until and instant.astimezone(zone).replace(tzinfo=None) == wall:
                count += 1
    return min(count, limit)


def upcoming_of(schedule: ScheduleRow, *, default_zone: str, count: int = 5) -> list[datetime]:
    """The schedule's next `count` due times, from its next run on (one for a one-shot)."""
    if schedule.next_run_at is None:
        return []
    found = [schedule.next_run_at]
    while len(found) < count:
        later = due_after(schedule, found[-1], default_zone=default_zone)
        if later is None:
            break
        found.append(later)
    return found


def _zone(schedule: ScheduleRow, default_zone: str) -> ZoneInfo | None:
    return parse_timezone(schedule.timezone or default_zone) if schedule.kind == "cron" else None
