"""gateway certificates: the TLS client certificate issued to each gateway, and commands that carry bytes

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 21:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (SQLite has it): a batch would copy and drop ``gateways``, which devices reference.
    op.add_column("gateways", sa.Column("tls_cert_pem", sa.Text(), nullable=True))
    op.add_column("gateways", sa.Column("tls_cert_not_after_ms", sa.BigInteger(), nullable=True))
    op.add_column("commands", sa.Column("argument", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    op.drop_column("commands", "argument")
    op.drop_column("gateways", "tls_cert_not_after_ms")
    op.drop_column("gateways", "tls_cert_pem")
