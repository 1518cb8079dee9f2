"""Which processes a heartbeat takes for dead (`core.takeover`); the recovery of a dead one's
workflows is shown end to end by `tests/e2e/test_takeover.py`."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import delete, insert, select

from kennel.core.runtime import Runtime
from kennel.core.settings import SettingsError, load_settings
from kennel.core.takeover import Takeover, host_identity
from kennel.core.timestamps import utcnow
from kennel.models import executors


async def _rows(app: FastAPI) -> dict[str, object]:
    async with app.state.runtime.db.read() as r:
        rows = await r.all(select(executors.c.executor_id, executors.c.heartbeat_at))
    return {row.executor_id: row.heartbeat_at for row in rows}


async def test_the_silent_and_the_gone_are_taken_over_the_living_are_not(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    rt = app.state.runtime
    now = utcnow()
    unused_pid = 2**22 + 12345  # above Linux's pid_max: no process has it
    others = [
        # another machine, heard from just now: alive
        ("elsewhere-live", "other-host/1/pid:[1]", 1, now),
        # another machine, silent for longer than KENNEL_TAKEOVER_AFTER_SECONDS: dead
        ("elsewhere-silent", "other-host/1/pid:[1]", 1, now - timedelta(minutes=5)),
        # this machine, recent heartbeat but its pid is gone (killed, started again): dead
        ("here-killed", host_identity(), unused_pid, now),
    ]
    async with rt.db.write() as w:
        await w.execute(
            insert(executors),
            [
                {
                    "executor_id": executor_id,
                    "host": host,
                    "pid": pid,
                    "started_at": heartbeat,
                    "heartbeat_at": heartbeat,
                }
                for executor_id, host, pid, heartbeat in others
            ],
        )
    try:
        with caplog.at_level(logging.INFO, logger="kennel.takeover"):
            await Takeover(rt).beat()
        left = await _rows(app)
        assert "elsewhere-live" in left
        assert "elsewhere-silent" not in left
        assert "here-killed" not in left
        assert rt.settings.executor_id in left  # its own heartbeat, just written
        assert left[rt.settings.executor_id] >= now
        gone = [r.getMessage() for r in caplog.records if "is gone" in r.getMessage()]
        assert any("elsewhere-silent" in m and "silent since" in m for m in gone), gone
        assert any("here-killed" in m and f"{unused_pid} on this host" in m for m in gone), gone
    finally:
        async with rt.db.write() as w:
            await w.execute(delete(executors).where(executors.c.executor_id == "elsewhere-live"))


async def test_a_stopped_process_is_taken_over_at_the_next_beat(app: FastAPI) -> None:
    rt = app.state.runtime
    async with rt.db.write() as w:  # a live process of another machine...
        now = utcnow()
        await w.execute(
            insert(executors),
            {
                "executor_id": "stopping",
                "host": "other-host/1/pid:[1]",
                "pid": 1,
                "started_at": now,
                "heartbeat_at": now,
            },
        )
    await Takeover(rt).beat()
    assert "stopping" in await _rows(app)
    other = Runtime(rt.settings.model_copy(update={"executor_id": "stopping"}), rt.db, rt.model)
    await Takeover(other).release()  # ...stopped by SIGTERM, once its DBOS shut down
    await Takeover(rt).beat()
    assert "stopping" not in await _rows(app)


def test_a_takeover_sooner_than_two_heartbeats_is_refused_by_name() -> None:
    with pytest.raises(SettingsError, match="KENNEL_TAKEOVER_AFTER_SECONDS must be at least"):
        load_settings(heartbeat_seconds=10, takeover_after_seconds=15)
    assert load_settings(heartbeat_seconds=10, takeover_after_seconds=20).heartbeat_seconds == 10
