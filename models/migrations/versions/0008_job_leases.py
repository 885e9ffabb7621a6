"""job leases: a running job's heartbeat, so a dead worker's job is found in seconds

Revision ID: 0008_job_leases
Revises: 0006_reconciliation
Create Date: 2026-12-12
"""

import sqlalchemy as sa
from alembic import op

import models.types

revision = "0008_job_leases"
down_revision = "0007_settlement_manual"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("heartbeat_at", models.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_jobs_state_heartbeat_at", ["state", "heartbeat_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_state_heartbeat_at")
        batch_op.drop_column("heartbeat_at")
