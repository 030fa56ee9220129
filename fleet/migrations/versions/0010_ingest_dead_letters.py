"""ingest dead letters: inbound messages that could not be processed, kept, counted and acknowledged

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 12:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingest_dead_letters",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("topic", sa.String(length=300), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=True),
        sa.Column("village_id", sa.String(length=64), nullable=True),
        sa.Column("gateway_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("error", sa.String(length=512), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("payload_bytes", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("first_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index("ix_ingest_dead_letters_gateway_id", "ingest_dead_letters", ["gateway_id"])
    op.create_index("ix_ingest_dead_letters_reason", "ingest_dead_letters", ["reason"])
    op.create_index("ix_ingest_dead_letters_last_ms", "ingest_dead_letters", ["last_ms"])


def downgrade() -> None:
    op.drop_table("ingest_dead_letters")
