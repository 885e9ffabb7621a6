"""settlement reports: payments recorded outside the gateway, counted on their own

Revision ID: 0007_settlement_manual
Revises: 0006_reconciliation
Create Date: 2027-01-12
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_settlement_manual"
down_revision = "0006_reconciliation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Reports written before this revision counted no manual payment: zero is what they found.
    with op.batch_alter_table("reconciliation_reports", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "manual",
                sa.JSON(),
                nullable=False,
                server_default=sa.text("""'{"count": 0, "total": "0.00", "refundCount": 0, "refundTotal": "0.00"}'"""),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("reconciliation_reports", schema=None) as batch_op:
        batch_op.drop_column("manual")
