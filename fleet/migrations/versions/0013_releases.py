"""releases: signed agent and firmware releases the fleet serves to gateways

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08 00:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "releases",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("version", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("signed", sa.Text(), nullable=False),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column("total_size", sa.BigInteger(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("uploaded_ms", sa.BigInteger(), nullable=False),
        sa.Column("uploaded_by", sa.String(64), nullable=False),
        sa.Column("ready_ms", sa.BigInteger(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("releases")
