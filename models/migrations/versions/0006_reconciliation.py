"""settlement reports; index for the unpaid-orders job

Revision ID: 0006_reconciliation
Revises: 0005_lifecycle
Create Date: 2026-12-10
"""

import sqlalchemy as sa
from alembic import op

import models.types

revision = "0006_reconciliation"
down_revision = "0005_lifecycle"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reconciliation_reports",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("matched_count", sa.Integer(), nullable=False),
        sa.Column("missing_in_gateway", sa.JSON(), nullable=False),
        sa.Column("missing_in_db", sa.JSON(), nullable=False),
        sa.Column("amount_mismatches", sa.JSON(), nullable=False),
        sa.Column("created_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_reports")),
        sa.UniqueConstraint("date", "gateway_id", name="uq_reconciliation_reports_date_gateway"),
    )
    with op.batch_alter_table("reconciliation_reports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reconciliation_reports_date"), ["date"], unique=False)
    op.create_index("ix_orders_status_hold_expires_at", "orders", ["status", "hold_expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_orders_status_hold_expires_at", table_name="orders")
    with op.batch_alter_table("reconciliation_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reconciliation_reports_date"))
    op.drop_table("reconciliation_reports")
