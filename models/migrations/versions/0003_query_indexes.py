"""indexes for the order list and metrics queries

Composite indexes whose leading column serves the common filters (status, customerId,
createdAt ranges, totalAmount ranges) and whose trailing columns serve the keyset orderings
(``ORDER BY created_at DESC, id DESC`` and friends), on SQLite and PostgreSQL alike.

Revision ID: 0003_query_indexes
Revises: 0001
Create Date: 2026-12-01
"""

from alembic import op

revision = "0003_query_indexes"
down_revision = "0002_payments"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_orders_status_created_at_id", ["status", "created_at", "id"]),
    ("ix_orders_customer_id_created_at_id", ["customer_id", "created_at", "id"]),
    ("ix_orders_created_at_id", ["created_at", "id"]),
    ("ix_orders_total_amount_id", ["total_amount", "id"]),
)


def upgrade() -> None:
    for name, columns in INDEXES:
        op.create_index(name, "orders", columns, unique=False)


def downgrade() -> None:
    for name, _columns in reversed(INDEXES):
        op.drop_index(name, table_name="orders")
