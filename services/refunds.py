"""The one call site through which the lifecycle asks for money back.

Transitions call :func:`queue_refund` inside their own transaction; when the order holds captured
money it records a ``refund`` payment attempt against the order's charge and its job on the
``payments`` queue (``services.payments.queue_refund_in``; the payments task calls the gateway
with the attempt's idempotency key), and the caller sends the job's message after commit.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.orm import Session

from models import Order
from services import lifecycle, payments
from services.jobs import JobRef
from services.money import to_money
from services.principal import Principal


def queue_refund(
    session: Session,
    order: Order,
    amount: Decimal,
    *,
    reason: str | None,  # recorded in the status history by the caller
    principal: Principal,
    request_id: str | None,
) -> JobRef | None:
    """Queue a refund of ``amount`` for ``order``; ``None`` when there is nothing to give back."""
    amount = to_money(amount)
    if amount <= 0 or not lifecycle.money_captured(order.payment_status):
        return None
    queued = payments.queue_refund_in(session, order, amount, principal=principal, request_id=request_id)
    return queued.job if queued is not None else None
