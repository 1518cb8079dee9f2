"""DBOS's configuration: the system database is the app's, with SQLite's needs met."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from fastapi import FastAPI

from kennel.core.durable import config
from tests.conftest import make_settings


def test_sqlite_connections_are_not_pinged_and_postgresql_ones_are(tmp_path: Path) -> None:
    sqlite = config(make_settings(f"sqlite:///{tmp_path}/k.sqlite3", tmp_path))
    assert sqlite["system_database_url"].startswith("sqlite:///")
    assert sqlite["db_engine_kwargs"]["pool_pre_ping"] is False  # a local file never goes stale
    postgres = config(make_settings("postgresql://postgres@127.0.0.1:5432/kennel", tmp_path))
    assert postgres["system_database_url"].startswith("postgresql")
    assert postgres["db_engine_kwargs"]["pool_pre_ping"] is True  # DBOS's default, kept


def test_dbos_takes_its_share_of_the_connection_budget(tmp_path: Path) -> None:
    settings = make_settings(
        "postgresql://postgres@127.0.0.1:5432/kennel", tmp_path, database_connections=30
    )
    shares = settings.connection_shares
    engine = config(settings)["db_engine_kwargs"]
    assert engine["pool_size"] + engine["max_overflow"] + 1 == shares.dbos  # + its LISTEN one
    assert shares.dbos + shares.http + shares.smtp == 30


def test_dbos_sqlite_connections_are_synchronous_normal_on_the_apps_file(tmp_path: Path) -> None:
    """As DBOS builds its engine: each connection commits without an fsync of its own."""
    dbos = config(make_settings(f"sqlite:///{tmp_path}/k.sqlite3", tmp_path))
    engine = sa.create_engine(dbos["system_database_url"], **dbos["db_engine_kwargs"])
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            (_, _, file), *_ = conn.exec_driver_sql("PRAGMA database_list").all()
        assert Path(file) == tmp_path / "k.sqlite3"
    finally:
        engine.dispose()


async def test_queues_are_polled_at_the_setting(app: FastAPI) -> None:
    """The turns' runner polls for work queued by other processes at
    `queue_polling_seconds`, the mail's five times as slowly; work queued in this process
    wakes them (tests/e2e/test_wakeup.py)."""
    from dbos import DBOS

    from kennel.mail.workflows import MAIL_QUEUE
    from kennel.tasks.workflows import TURN_QUEUE

    polling = app.state.runtime.settings.queue_polling_seconds
    for name, expected in ((TURN_QUEUE, polling), (MAIL_QUEUE, 5 * polling)):
        queue = await DBOS.retrieve_queue_async(name)
        assert queue is not None
        assert await queue.get_polling_interval_sec_async() == expected
