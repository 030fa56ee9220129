"""config layers and each gateway's desired and reported config

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "config_layers",
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("scope_id", sa.String(length=64), nullable=False),
        sa.Column("overrides", sa.JSON(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("scope", "scope_id"),
    )
    op.create_table(
        "gateway_configs",
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("village_id", sa.String(length=64), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=True),
        sa.Column("config_sha256", sa.String(length=64), nullable=True),
        sa.Column("changed_ms", sa.BigInteger(), nullable=True),
        sa.Column("invalid", sa.String(length=1024), nullable=True),
        sa.Column("signature", sa.String(length=128), nullable=True),
        sa.Column("key_id", sa.String(length=16), nullable=True),
        sa.Column("published_ms", sa.BigInteger(), nullable=True),
        sa.Column("reported_version", sa.BigInteger(), nullable=True),
        sa.Column("reported_status", sa.String(length=16), nullable=True),
        sa.Column("reported_error", sa.String(length=256), nullable=True),
        sa.Column("reported_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("gateway_id"),
    )
    with op.batch_alter_table("gateway_configs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gateway_configs_published_ms"), ["published_ms"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("gateway_configs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gateway_configs_published_ms"))
    op.drop_table("gateway_configs")
    op.drop_table("config_layers")
