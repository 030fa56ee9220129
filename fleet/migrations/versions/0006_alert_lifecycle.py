"""alert lifecycle: state, escalation level and deadline, correlation, and every step taken

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 09:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as alerts:
        alerts.add_column(sa.Column("state", sa.String(length=16), nullable=False, server_default="raised"))
        alerts.add_column(sa.Column("level", sa.String(length=16), nullable=False, server_default="village"))
        alerts.add_column(sa.Column("state_changed_ms", sa.BigInteger(), nullable=False, server_default="0"))
        alerts.add_column(sa.Column("escalate_at_ms", sa.BigInteger(), nullable=True))
        alerts.add_column(sa.Column("acknowledged_by", sa.String(length=64), nullable=True))
        alerts.add_column(sa.Column("assignee", sa.String(length=128), nullable=True))
        alerts.add_column(sa.Column("feedback_rating", sa.Integer(), nullable=True))
        alerts.add_column(sa.Column("feedback_comment", sa.String(length=512), nullable=True))
        alerts.add_column(sa.Column("condition_key", sa.String(length=200), nullable=False, server_default=""))
        alerts.add_column(sa.Column("occurrences", sa.Integer(), nullable=False, server_default="1"))
        alerts.add_column(sa.Column("last_seen_ms", sa.BigInteger(), nullable=False, server_default="0"))
        alerts.add_column(sa.Column("clear_at_ms", sa.BigInteger(), nullable=True))
        alerts.create_index("ix_alerts_state", ["state"])
        alerts.create_index("ix_alerts_escalate_at_ms", ["escalate_at_ms"])
        alerts.create_index("ix_alerts_condition_key", ["condition_key"])
        alerts.create_index("ix_alerts_clear_at_ms", ["clear_at_ms"])
    # Alerts stored before the lifecycle existed: changed state when received, their own condition each.
    op.execute(
        "UPDATE alerts SET state_changed_ms = received_at_ms, last_seen_ms = raised_at_ms, "
        "condition_key = gateway_id || '/' || device_id || '/' || kind"
    )
    op.create_table(
        "alert_transitions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.String(length=36), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=512), nullable=True),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alert_transitions_alert_id", "alert_transitions", ["alert_id"])
    op.create_table(
        "alert_repeats",
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("alert_id", sa.String(length=36), nullable=False),
        sa.Column("raised_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("received_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"]),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index("ix_alert_repeats_alert_id", "alert_repeats", ["alert_id"])


def downgrade() -> None:
    op.drop_index("ix_alert_repeats_alert_id", table_name="alert_repeats")
    op.drop_table("alert_repeats")
    op.drop_index("ix_alert_transitions_alert_id", table_name="alert_transitions")
    op.drop_table("alert_transitions")
    with op.batch_alter_table("alerts") as alerts:
        alerts.drop_index("ix_alerts_clear_at_ms")
        alerts.drop_index("ix_alerts_condition_key")
        alerts.drop_index("ix_alerts_escalate_at_ms")
        alerts.drop_index("ix_alerts_state")
        for column in (
            "clear_at_ms",
            "last_seen_ms",
            "occurrences",
            "condition_key",
            "feedback_comment",
            "feedback_rating",
            "assignee",
            "acknowledged_by",
            "escalate_at_ms",
            "state_changed_ms",
            "level",
            "state",
        ):
            alerts.drop_column(column)
