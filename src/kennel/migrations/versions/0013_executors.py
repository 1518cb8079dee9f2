"""the processes running DBOS workflows, and their heartbeats (takeover of a dead one's work)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 21:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "executors",
        sa.Column("executor_id", sa.String(length=100), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("executor_id", name=op.f("pk_executors")),
    )
    op.create_index(op.f("ix_executors_heartbeat_at"), "executors", ["heartbeat_at"])
    in_flight = sa.text("status IN ('pending', 'running')")
    op.create_index(
        "ix_turns_in_flight",
        "turns",
        ["status", "created_at"],
        sqlite_where=in_flight,
        postgresql_where=in_flight,
    )


def downgrade() -> None:
    op.drop_index("ix_turns_in_flight", table_name="turns")
    op.drop_index(op.f("ix_executors_heartbeat_at"), table_name="executors")
    op.drop_table("executors")
