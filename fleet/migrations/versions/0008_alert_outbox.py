"""alert outbox: one message per channel and step, delivered at least once; alerts keep their case's state

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 09:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.String(length=36), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=512), nullable=True),
        sa.Column("key", sa.String(length=36), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("next_attempt_ms", sa.BigInteger(), nullable=False),
        sa.Column("delivered_ms", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.String(length=512), nullable=True),
        sa.Column("result", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index("ix_alert_outbox_alert_id", "alert_outbox", ["alert_id"])
    op.create_index("ix_alert_outbox_due", "alert_outbox", ["channel", "state", "next_attempt_ms"])
    # Every case's opening moves into the outbox, keyed by its alert id as before (the platform's idempotency
    # key): pending ones to be delivered, delivered ones so that cancelling or clearing their alert withdraws
    # the case (a withdrawal is queued only where an opening is), dead ones to be put back in line.
    op.execute(
        "INSERT INTO alert_outbox (alert_id, channel, action, step, key, state, attempts, created_ms, "
        "next_attempt_ms, delivered_ms, last_error, result) SELECT id, 'governance', 'open_case', 'raise', id, "
        "delivery_state, delivery_attempts, received_at_ms, next_attempt_ms, delivered_at_ms, last_error, case_id "
        "FROM alerts WHERE delivery_state IN ('pending', 'delivered', 'dead') ORDER BY received_at_ms, id"
    )
    op.drop_index("ix_alerts_delivery_due", table_name="alerts")
    # In place (SQLite 3.35+ drops a column natively), not by batch mode's copy of the table: dropping the old
    # alerts table fails on SQLite's foreign keys as soon as anything refers to an alert (its transitions, its
    # outbox messages), and the pragma that would allow it cannot change inside the migration's transaction.
    op.drop_column("alerts", "next_attempt_ms")
    op.create_index("ix_alerts_delivery_state", "alerts", ["delivery_state"])


def downgrade() -> None:
    op.drop_index("ix_alerts_delivery_state", table_name="alerts")
    op.add_column("alerts", sa.Column("next_attempt_ms", sa.BigInteger(), nullable=False, server_default="0"))
    op.create_index("ix_alerts_delivery_due", "alerts", ["delivery_state", "next_attempt_ms"])
    op.drop_index("ix_alert_outbox_due", table_name="alert_outbox")
    op.drop_index("ix_alert_outbox_alert_id", table_name="alert_outbox")
    op.drop_table("alert_outbox")
