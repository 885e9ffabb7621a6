"""Confirming a paid order: shared by the payment task, the webhook, the checkout return and
reconciliation. A capture that lands on an order already paid, or on one cancelled meanwhile, is
refunded at once."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Order, Payment
from models.types import utcnow
from services.changes import transitions
from services.events.record import ORDER_PAYMENT_SUCCEEDED
from services.jobs.outbox import JobRef
from services.kernel import lifecycle
from services.kernel.principal import SYSTEM
from services.ledger.attempts import queue_duplicate_refund_in, queue_refund_in
from services.ledger.book import CAPTURING_ACTIONS, SUCCEEDED
from services.ledger.events import add_payment_event


def set_payment_status(order: Order, payment_status: str) -> None:
    if order.payment_status != payment_status:
        order.payment_status = payment_status
        order.version += 1
        order.updated_at = utcnow()


def mark_order_paid(
    session: Session, order: Order, *, actor: str, reason: str, request_id: str | None = None
) -> list[JobRef] | None:
    """``pending_payment`` → ``processing`` through the lifecycle's one transition function (history
    row, version bump, held stock committed, other checkout sessions closed); the jobs that queued,
    or None if the order is not payable."""
    if not lifecycle.order_transition_allowed(order.status, lifecycle.PROCESSING) or (
        order.status != lifecycle.PENDING_PAYMENT
    ):
        return None
    order.payment_status = lifecycle.PAYMENT_COMPLETED
    change = transitions.transition_order(
        session, order, lifecycle.PROCESSING, reason=reason, principal=SYSTEM, actor=actor, request_id=request_id
    )
    return change.jobs


def confirm_payment(
    session: Session,
    order: Order,
    payment: Payment,
    *,
    transaction_id: str | None,
    actor: str,
    reason: str,
    request_id: str | None = None,
) -> list[JobRef]:
    """Record ``payment`` as succeeded and apply it to ``order`` (idempotent; caller holds the locks).

    Returns the jobs this queued, for the caller to send after commit: a second capture on an
    order already paid, or a capture on a cancelled order, is refunded at once, in full.
    """
    already = payment.state == SUCCEEDED
    payment.state = SUCCEEDED
    payment.gateway_transaction_id = payment.gateway_transaction_id or transaction_id
    payment.updated_at = utcnow()
    if not already:
        payment.error = None
        add_payment_event(session, order, payment, ORDER_PAYMENT_SUCCEEDED)
    if payment.action not in CAPTURING_ACTIONS:
        return []
    paid = mark_order_paid(session, order, actor=actor, reason=reason, request_id=request_id)
    if paid is not None:
        return paid
    if already:
        return []
    others = session.scalars(
        select(Payment.id).where(
            Payment.order_id == order.id,
            Payment.id != payment.id,
            Payment.action.in_(CAPTURING_ACTIONS),
            Payment.state == SUCCEEDED,
        )
    ).all()
    if others:
        return [queue_duplicate_refund_in(session, order, payment, request_id=request_id)]
    if order.status == lifecycle.CANCELLED:
        # The charge reached the gateway before the order was cancelled, so the cancellation found
        # no captured money to give back: refund it now, once (a repeated confirmation returns above).
        set_payment_status(order, lifecycle.PAYMENT_COMPLETED)
        payment.error = {"code": "ORDER_CANCELLED", "message": "Captured after the order was cancelled; refunded."}
        refund = queue_refund_in(session, order, payment.amount, principal=SYSTEM, request_id=request_id)
        return [refund.job] if refund is not None else []
    if order.status != lifecycle.PROCESSING:
        payment.error = {"code": "ORDER_NOT_PAYABLE", "message": f"Payment arrived for a {order.status} order."}
    return []
