"""The retry schedule, its jitter, and Retry-After."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kennel.core.parsers import DEFAULT_RETRY_SCHEDULE as DEFAULT_SCHEDULE
from kennel.core.parsers import parse_retry_schedule as parse_schedule
from kennel.webhooks.retries import next_delay, parse_retry_after


class TestParseSchedule:
    def test_plain_seconds(self) -> None:
        assert parse_schedule("0,1,2") == (0.0, 1.0, 2.0)
        assert parse_schedule(" 0.5 , 30 ") == (0.5, 30.0)

    def test_units(self) -> None:
        assert parse_schedule("0, 5s, 5m, 30m, 2h, 5h, 10h, 10h") == DEFAULT_SCHEDULE
        assert parse_schedule("1d,1H") == (86400.0, 3600.0)

    @pytest.mark.parametrize("text", ["", " ", "0,,5", "5,-1", "1e3", "abc", "5 min", "nan", "0;5"])
    def test_refuses_with_a_clear_message(self, text: str) -> None:
        with pytest.raises(ValueError, match="retry schedule"):
            parse_schedule(text)


class TestNextDelay:
    def test_follows_the_schedule_with_ten_percent_jitter(self) -> None:
        rng = random.Random(7)
        for attempt, base in enumerate(DEFAULT_SCHEDULE[1:], start=1):
            delay = next_delay(DEFAULT_SCHEDULE, attempt, None, cap=3600, rng=rng)
            assert delay is not None
            assert base * 0.9 <= delay <= base * 1.1

    def test_gives_up_after_the_last_attempt(self) -> None:
        rng = random.Random(1)
        assert next_delay(DEFAULT_SCHEDULE, 8, None, cap=3600, rng=rng) is None
        assert next_delay((0,), 1, None, cap=3600, rng=rng) is None
        assert next_delay((0, 1), 1, None, cap=3600, rng=rng) is not None

    def test_attempts_are_numbered_from_one(self) -> None:
        with pytest.raises(ValueError, match="start at 1"):
            next_delay(DEFAULT_SCHEDULE, 0, None, cap=3600, rng=random.Random())

    def test_retry_after_is_a_floor_capped(self) -> None:
        rng = random.Random(3)
        assert next_delay((0, 5, 300), 1, 120, cap=3600, rng=rng) == 120
        assert next_delay((0, 5, 300), 1, 86400, cap=600, rng=rng) == 600
        later = next_delay((0, 5, 300), 2, 1, cap=3600, rng=rng)
        assert later is not None
        assert later >= 270  # a short Retry-After never hastens
        assert next_delay((0, 5), 2, 60, cap=3600, rng=rng) is None

    def test_zero_stays_zero(self) -> None:
        assert next_delay((0, 0, 0), 1, None, cap=3600, rng=random.Random()) == 0

    @settings(database=None, max_examples=200)
    @given(
        st.lists(st.floats(0, 1e6), min_size=2, max_size=10),
        st.integers(1, 9),
        st.none() | st.floats(allow_nan=True, allow_infinity=True),
        st.integers(0, 2**32),
    )
    def test_never_negative_and_within_bounds(
        self, schedule: list[float], attempt: int, retry_after: float | None, seed: int
    ) -> None:
        delay = next_delay(schedule, attempt, retry_after, cap=3600, rng=random.Random(seed))
        if attempt >= len(schedule):
            assert delay is None
            return
        assert delay is not None
        assert 0 <= delay <= max(schedule[attempt] * 1.1, 3600)


class TestParseRetryAfter:
    def test_seconds(self) -> None:
        assert parse_retry_after("120") == 120.0
        assert parse_retry_after(" 0 ") == 0.0

    def test_http_date(self) -> None:
        now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
        in_90 = format_datetime(now + timedelta(seconds=90), usegmt=True)
        assert parse_retry_after(in_90, now=now) == 90.0
        assert parse_retry_after("Fri, 01 May 2026 11:00:00 GMT", now=now) == 0.0

    @pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5", "١٢"])
    def test_absent_or_bad(self, value: str | None) -> None:
        assert parse_retry_after(value) is None
