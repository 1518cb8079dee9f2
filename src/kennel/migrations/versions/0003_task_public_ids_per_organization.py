"""task ids unique per organization (public_id), and what triggered a task

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("public_id", sa.String(length=128), nullable=True))
        batch_op.add_column(
            sa.Column(
                "trigger", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
            )
        )
    # Existing tasks keep the id their clients know.
    op.execute("UPDATE tasks SET public_id = id")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.alter_column("public_id", existing_type=sa.String(length=128), nullable=False)
        batch_op.create_unique_constraint(
            "uq_tasks_organization_id_public_id", ["organization_id", "public_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_constraint("uq_tasks_organization_id_public_id", type_="unique")
        batch_op.drop_column("trigger")
        batch_op.drop_column("public_id")
