"""payments

Revision ID: 0002_payments
Revises: 0001
Create Date: 2026-11-28

Payments (every gateway attempt), webhook events (stored before they are applied) and the
sandbox gateway's ledger. Branches off 0001 beside the other features' revisions.
"""

import sqlalchemy as sa
from alembic import op

import models.types


revision = '0002_payments'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sandbox_ledger',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('gateway_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('idempotency_key', sa.String(length=255), nullable=True),
    sa.Column('amount', models.types.Money(precision=12, scale=2), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('token', sa.String(length=255), nullable=True),
    sa.Column('parent_id', sa.String(length=64), nullable=True),
    sa.Column('reference', sa.String(length=64), nullable=True),
    sa.Column('decline_reason', sa.String(length=64), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('created_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sandbox_ledger')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_sandbox_ledger_idempotency_key'))
    )
    with op.batch_alter_table('sandbox_ledger', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sandbox_ledger_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_sandbox_ledger_parent_id'), ['parent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sandbox_ledger_reference'), ['reference'], unique=False)

    op.create_table('webhook_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('gateway_id', sa.String(length=64), nullable=False),
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=100), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('order_id', sa.String(length=40), nullable=True),
    sa.Column('checkout_session_id', sa.String(length=255), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('received_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('applied_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_events')),
    sa.UniqueConstraint('gateway_id', 'event_id', name='gateway_event')
    )
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_events_state'), ['state'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_events_order_id'), ['order_id'], unique=False)
        batch_op.create_index(
            batch_op.f('ix_webhook_events_checkout_session_id'), ['checkout_session_id'], unique=False
        )

    op.create_table('payments',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('order_id', sa.String(length=40), nullable=False),
    sa.Column('gateway_id', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('method', sa.String(length=32), nullable=True),
    sa.Column('amount', models.types.Money(precision=12, scale=2), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('gateway_transaction_id', sa.String(length=255), nullable=True),
    sa.Column('checkout_session_id', sa.String(length=255), nullable=True),
    sa.Column('parent_id', sa.String(length=40), nullable=True),
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('token', sa.String(length=255), nullable=True),
    sa.Column('error', sa.JSON(), nullable=True),
    sa.Column('job_id', sa.String(length=40), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_payments_order_id_orders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments')),
    sa.UniqueConstraint('gateway_id', 'checkout_session_id', name='gateway_checkout_session'),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_payments_idempotency_key'))
    )
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payments_gateway_transaction_id'), ['gateway_transaction_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payments_order_id'), ['order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payments_state'), ['state'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payments_state'))
        batch_op.drop_index(batch_op.f('ix_payments_order_id'))
        batch_op.drop_index(batch_op.f('ix_payments_gateway_transaction_id'))

    op.drop_table('payments')
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_events_checkout_session_id'))
        batch_op.drop_index(batch_op.f('ix_webhook_events_order_id'))
        batch_op.drop_index(batch_op.f('ix_webhook_events_state'))

    op.drop_table('webhook_events')
    with op.batch_alter_table('sandbox_ledger', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sandbox_ledger_reference'))
        batch_op.drop_index(batch_op.f('ix_sandbox_ledger_parent_id'))
        batch_op.drop_index(batch_op.f('ix_sandbox_ledger_kind'))

    op.drop_table('sandbox_ledger')
