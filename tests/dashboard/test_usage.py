"""The usage picture: credits per day of a worker over 30 days, and the bars drawn from them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from kennel.api.errors import NotFound
from kennel.core.timestamps import utcnow
from kennel.dashboard.usage import usage_chart
from kennel.models import tasks, turns
from kennel.tasks.service import credits_per_day
from tests.factories import Member, make_member
from tests.factories.workers import new_worker_id


class TestCreditsPerDay:
    async def test_thirty_days_oldest_first_in_utc(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        worker_id = await new_worker_id(client, member)
        for text in ("one", "two", "three"):
            r = await client.post(
                "/api/tasks", json={"input": text, "workerId": worker_id}, headers=member.headers
            )
            assert r.status_code == 200, r.text
        rt = app.state.runtime
        async with rt.db.read() as r:
            rows = await r.all(
                select(turns.c.id, turns.c.credits)
                .join(tasks, tasks.c.id == turns.c.task_id)
                .where(tasks.c.worker_id == worker_id)
                .order_by(turns.c.created_at)
            )
        spent = [credits for _, credits in rows]
        assert all(spent)
        today = utcnow().date()
        # One turn yesterday at 23:59 UTC, one 30 days ago (just outside the window).
        moved = {
            rows[0][0]: datetime.combine(today - timedelta(days=1), datetime.max.time(), UTC),
            rows[1][0]: datetime.combine(today - timedelta(days=30), datetime.min.time(), UTC),
        }
        async with rt.db.write() as w:
            for turn_id, moment in moved.items():
                await w.execute(
                    update(turns).where(turns.c.id == turn_id).values(completed_at=moment)
                )
        days = await credits_per_day(rt, member.caller, worker_id)
        assert len(days) == 30
        assert days[0][0] == today - timedelta(days=29)
        assert days[-1] == (today, spent[2])
        assert days[-2] == (today - timedelta(days=1), spent[0])
        assert sum(credits for _, credits in days) == spent[0] + spent[2]

    async def test_another_organizations_worker_is_not_found(
        self, app: FastAPI, client: httpx.AsyncClient, member: Member
    ) -> None:
        owner = await make_member(app)
        worker_id = await new_worker_id(client, owner)
        with pytest.raises(NotFound):
            await credits_per_day(app.state.runtime, member.caller, worker_id)


class TestUsageChart:
    def test_bars_scale_to_the_busiest_day(self) -> None:
        first = date(2026, 11, 1)
        days = [(first + timedelta(days=n), credits) for n, credits in enumerate([0, 5, 10])]
        chart = usage_chart(days)
        assert (chart.total, chart.peak) == (15, 10)
        assert (chart.first_day, chart.last_day) == (first, date(2026, 11, 3))
        zero, half, full = chart.bars
        assert zero.height == 1.0  # a stub marks the day
        assert full.height == pytest.approx(2 * half.height)
        assert full.y + full.height == chart.height
        assert zero.x < half.x < full.x
        assert full.x + full.width <= chart.width

    def test_no_credits_at_all(self) -> None:
        chart = usage_chart([(date(2026, 11, 1) + timedelta(days=n), 0) for n in range(30)])
        assert chart.peak == 0
        assert {bar.height for bar in chart.bars} == {1.0}
