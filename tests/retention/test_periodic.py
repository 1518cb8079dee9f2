"""The hourly prune runs in one process of those sharing a database: the first to claim the hour."""

from __future__ import annotations

import secrets
from types import SimpleNamespace

from fastapi import FastAPI

from kennel.retention.periodic import RetentionService


async def test_one_process_of_several_prunes_an_hour(app: FastAPI) -> None:
    rt = app.state.runtime

    def process(executor_id: str) -> RetentionService:
        # Another process on the same database: another executor id, the same DBOS tables.
        other = SimpleNamespace(
            db=rt.db, settings=rt.settings.model_copy(update={"executor_id": executor_id})
        )
        return RetentionService(other, days=3650)  # type: ignore[arg-type]  # a stand-in Runtime

    hour = secrets.randbelow(10**9) + 10**9  # an hour no other test claims
    first, second = process("proc-a"), process("proc-b")
    assert await first.run_once(hour) is True
    assert await second.run_once(hour) is False
    assert await first.run_once(hour) is True  # its own claim again (a retry within the hour)
    assert await second.run_once(hour + 1) is True
