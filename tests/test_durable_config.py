"""DBOS's configuration: the system database is the app's, with SQLite's needs met."""

from __future__ import annotations

from pathlib import Path

from kennel.durable import config
from tests.conftest import make_settings


def test_sqlite_connections_are_not_pinged_and_postgresql_ones_are(tmp_path: Path) -> None:
    sqlite = config(make_settings(f"sqlite:///{tmp_path}/k.sqlite3", tmp_path))
    assert sqlite["system_database_url"].startswith("sqlite:///")
    assert sqlite["db_engine_kwargs"] == {"pool_pre_ping": False}  # a local file never goes stale
    postgres = config(make_settings("postgresql://postgres@127.0.0.1:5432/kennel", tmp_path))
    assert postgres["system_database_url"].startswith("postgresql")
    assert "db_engine_kwargs" not in postgres  # DBOS's default: ping before use
