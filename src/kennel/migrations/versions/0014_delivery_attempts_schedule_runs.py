"""a schedule run's folded due times and the process that fired it; delivery attempts begun
before they are sent

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 20:30:00.000000

`webhook_executions` keeps its columns: an attempt is now written before its POST (states
`pending`, `sending`) and a crash in between leaves it `unknown`; every state fits in
`request_status`'s ten characters.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("schedule_runs") as batch:
        batch.add_column(
            sa.Column("missed_count", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(sa.Column("fired_by", sa.String(length=200), nullable=True))


def downgrade() -> None:
    # Attempts still in flight or cut off read as failed ones to the code before.
    op.execute(
        "UPDATE webhook_executions SET request_status = 'error' "
        "WHERE request_status NOT IN ('success', 'error')"
    )
    with op.batch_alter_table("schedule_runs") as batch:
        batch.drop_column("fired_by")
        batch.drop_column("missed_count")
