"""indexes that keep `kennel prune` cheap on large tables

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 23:50:00.000000

- `tasks.last_turn_at`: the prune's candidates are the tasks idle since a date, across every
  worker (`ix_tasks_worker_last_turn` leads with the worker, so it cannot find them).
- `mail_messages.task_id`, `mail_threads.task_id`, `schedule_runs.task_id`: deleting a task sets
  NULL in (or deletes) the rows naming it; without an index PostgreSQL scans the whole table
  once per deleted task to find them.
- `webhook_events.created_at`: old deliveries are found by date.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = (
    ("ix_tasks_last_turn_at", "tasks", "last_turn_at"),
    ("ix_mail_messages_task_id", "mail_messages", "task_id"),
    ("ix_mail_threads_task_id", "mail_threads", "task_id"),
    ("ix_schedule_runs_task_id", "schedule_runs", "task_id"),
    ("ix_webhook_events_created_at", "webhook_events", "created_at"),
)


def upgrade() -> None:
    for name, table, column in _INDEXES:
        op.create_index(name, table, [column], unique=False)


def downgrade() -> None:
    for name, table, _column in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
