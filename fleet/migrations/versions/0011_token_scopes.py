"""token scopes: an API token may be scoped to a county, a town or a village

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 18:50:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as table:
        table.add_column(sa.Column("scope_kind", sa.String(length=16), nullable=True))
        table.add_column(sa.Column("scope_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as table:
        table.drop_column("scope_id")
        table.drop_column("scope_kind")
