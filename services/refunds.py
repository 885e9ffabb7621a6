"""The one call site through which the lifecycle asks for money back.

Transitions call :func:`queue_refund` inside their own transaction; it writes a refund job (the
payments work runs it on the ``payments`` queue) only when the order holds captured money, and the
caller sends the job's message after commit.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.orm import Session

from models import Order
from services import lifecycle
from services.jobs import JobRef, add_job
from services.money import to_money
from services.principal import Principal

REFUND_TASK = "payments.refund"
REFUND_QUEUE = "payments"


def queue_refund(
    session: Session,
    order: Order,
    amount: Decimal,
    *,
    reason: str | None,
    principal: Principal,
    request_id: str | None,
) -> JobRef | None:
    """Queue a refund of ``amount`` for ``order``; ``None`` when there is nothing to give back."""
    amount = to_money(amount)
    if amount <= 0 or not lifecycle.money_captured(order.payment_status):
        return None
    return add_job(
        session,
        job_type="refund",
        task_name=REFUND_TASK,
        queue=REFUND_QUEUE,
        args={"orderId": order.id, "amount": str(amount), "reason": reason or "order cancelled"},
        owner=principal,
        order_id=order.id,
        request_id=request_id,
        customer_id=order.customer_id,
    )
