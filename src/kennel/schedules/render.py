"""Rows to response shapes: `WorkerSchedule`."""

from __future__ import annotations

from kennel.core.runtime import Runtime
from kennel.core.timestamps import iso_z
from kennel.schedules.repository import ScheduleRow
from kennel.schedules.schemas import ScheduleOut
from kennel.schedules.service import zone_of

__all__ = ["schedule_out"]


def schedule_out(rt: Runtime, row: ScheduleRow) -> ScheduleOut:
    assert row.next_run_at is not None
    return ScheduleOut(
        id=row.id,
        type=row.kind,
        input=row.input,
        budget=row.budget,
        next_run_at=iso_z(row.next_run_at),
        delay_in_seconds=row.delay_seconds,
        cron=row.cron,
        timezone=zone_of(rt, row) if row.kind == "cron" else None,
        interval_seconds=row.interval_seconds,
        paused=row.paused,
        last_run_at=iso_z(row.last_run_at) if row.last_run_at else None,
        created_at=iso_z(row.created_at),
    )
