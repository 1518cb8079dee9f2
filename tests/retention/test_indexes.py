"""Migration 0015 makes the indexes the tables declare, so the prune's deletions stay cheap."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import create_engine, inspect

PRUNE_INDEXES = {
    ("tasks", "ix_tasks_last_turn_at", ("last_turn_at",)),
    ("mail_messages", "ix_mail_messages_task_id", ("task_id",)),
    ("mail_threads", "ix_mail_threads_task_id", ("task_id",)),
    ("schedule_runs", "ix_schedule_runs_task_id", ("task_id",)),
    ("webhook_events", "ix_webhook_events_created_at", ("created_at",)),
}


async def test_the_migration_makes_the_declared_indexes(app: FastAPI) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from kennel.models import metadata

    settings = app.state.runtime.settings
    url = settings.database_url_object
    engine = create_engine(
        url.set(drivername="sqlite" if settings.is_sqlite else "postgresql+psycopg")
    )
    try:
        with engine.connect() as connection:
            found = {
                (table, index["name"], tuple(index["column_names"]))
                for table in {t for t, _, _ in PRUNE_INDEXES}
                for index in inspect(connection).get_indexes(table)
            }
            context = MigrationContext.configure(connection)
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert PRUNE_INDEXES <= found
    names = {name for _, name, _ in PRUNE_INDEXES}
    assert [d for d in differences if any(name in repr(d) for name in names)] == []
