"""The lifecycle's one door to money: refunds, closing checkouts, voids, offline payments.

Transitions call :func:`queue_refund` inside their own transaction; when the order holds captured
money it records a ``refund`` payment attempt against the order's charge and its job on the
``payments`` queue (``services.payments.queue_refund_in``; the payments task calls the gateway
with the attempt's idempotency key), and the caller sends the job's message after commit.
:func:`queue_payment_closing` closes what could still take money for an order that stopped
awaiting payment, and :func:`record_offline_payment` is staff marking an order paid by hand.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.orm import Session

from models import Order
from services import lifecycle, payments
from services.errors import InvalidTransition
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


def queue_payment_closing(
    session: Session, order: Order, *, cancelling: bool, principal: Principal, request_id: str | None
) -> list[JobRef]:
    """What an order's money needs when it stops awaiting payment: its open hosted checkout
    sessions closed (paid another way, or cancelled) and, on cancellation, an open card
    authorization voided. Jobs for the caller to send after commit."""
    jobs = [payments.queue_close_checkout_in(session, order, principal=principal, request_id=request_id)]
    if cancelling:
        jobs.append(payments.queue_void_in(session, order, principal=principal, request_id=request_id))
    return [job for job in jobs if job is not None]


def record_offline_payment(session: Session, order: Order, *, principal: Principal, reason: str | None) -> None:
    """Staff move an unpaid order to ``processing`` ("Payment confirmed"): the money came outside
    the gateway, so it is recorded as a ``manual`` payment, and the order can ship and be refunded.

    Refused while the gateway holds or may be taking money for the order (an open authorization
    to capture, a charge whose outcome is unknown): recording it again by hand would count twice.
    """
    if lifecycle.money_captured(order.payment_status):
        return
    held = order.payment_status in (lifecycle.PAYMENT_AUTHORIZED, lifecycle.PAYMENT_PENDING)
    if held or payments.has_attempt_in_flight(session, order.id):
        raise InvalidTransition(
            "The gateway holds or is still taking a payment for this order: capture or void it, or wait for it.",
            details=[{"orderId": order.id, "currentStatus": order.status, "paymentStatus": order.payment_status}],
        )
    payments.record_manual_payment(session, order, principal=principal, reason=reason)
