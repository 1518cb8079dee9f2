"""MCP servers of an organization, the ones each worker uses, and turns' notices

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 18:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "mcp_servers",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("headers_sealed", sa.Text(), nullable=False),
        sa.Column("header_names", _JSON, nullable=False),
        sa.Column("created_by_user_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_mcp_servers_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"],
            ["users.id"],
            name=op.f("fk_mcp_servers_created_by_user_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mcp_servers")),
        sa.UniqueConstraint(
            "organization_id", "name", name=op.f("uq_mcp_servers_organization_id_name")
        ),
    )
    with op.batch_alter_table("workers") as batch:
        batch.add_column(
            sa.Column("mcp_servers", _JSON, nullable=False, server_default=sa.text("'[]'"))
        )
    with op.batch_alter_table("turns") as batch:
        batch.add_column(
            sa.Column("notices", _JSON, nullable=False, server_default=sa.text("'[]'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("turns") as batch:
        batch.drop_column("notices")
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("mcp_servers")
    op.drop_table("mcp_servers")
