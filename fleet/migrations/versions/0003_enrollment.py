"""enrollment: single-use enrollment tokens; each gateway's enrolled key, time and host, and its revocation

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "enrollment_tokens",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("village_id", sa.String(length=64), nullable=False),
        sa.Column("gateway_id", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=False),
        sa.Column("used_ms", sa.BigInteger(), nullable=True),
        sa.Column("enrolled_gateway_id", sa.String(length=64), nullable=True),
        sa.Column("revoked_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("secret_sha256"),
    )
    with op.batch_alter_table("enrollment_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_enrollment_tokens_village_id"), ["village_id"], unique=False)

    with op.batch_alter_table("gateways", schema=None) as batch_op:
        batch_op.add_column(sa.Column("public_key_pem", sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column("public_key_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("enrolled_ms", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("enrolled_hostname", sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column("revoked_ms", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("gateways", schema=None) as batch_op:
        batch_op.drop_column("revoked_ms")
        batch_op.drop_column("enrolled_hostname")
        batch_op.drop_column("enrolled_ms")
        batch_op.drop_column("public_key_sha256")
        batch_op.drop_column("public_key_pem")

    with op.batch_alter_table("enrollment_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_enrollment_tokens_village_id"))

    op.drop_table("enrollment_tokens")
