"""governance callbacks: each kept by its id, and the last sequence taken per alert's case

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as alerts:
        alerts.add_column(sa.Column("case_sequence", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "governance_callbacks",
        sa.Column("callback_id", sa.String(length=36), nullable=False),
        sa.Column("alert_id", sa.String(length=36), nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=512), nullable=True),
        sa.Column("sent_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("received_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"]),
        sa.PrimaryKeyConstraint("callback_id"),
    )
    op.create_index("ix_governance_callbacks_alert_id", "governance_callbacks", ["alert_id"])


def downgrade() -> None:
    op.drop_index("ix_governance_callbacks_alert_id", table_name="governance_callbacks")
    op.drop_table("governance_callbacks")
    with op.batch_alter_table("alerts") as alerts:
        alerts.drop_column("case_sequence")
