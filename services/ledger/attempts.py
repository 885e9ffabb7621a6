"""Recording payment attempts: the rows and jobs that move an order's money.

Each function writes, in the caller's transaction, a ``pending`` payment attempt and its job on the
``payments`` queue (the caller sends the message after commit; the payments task then calls the
gateway with the attempt's idempotency key), or records money that moved outside the gateway.
The lifecycle (``services.changes``) reaches money only through here: refunds on cancellation,
closing checkouts, voiding authorizations, staff marking an order paid by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.orm import Session

from models import Order, Payment
from models.ids import new_id
from models.types import utcnow
from services.events.record import ORDER_PAYMENT_SUCCEEDED
from services.jobs.kinds import CLOSE_CHECKOUT, PAYMENT
from services.jobs.outbox import JobRef, add_job
from services.kernel import lifecycle
from services.kernel.errors import InvalidTransition
from services.kernel.money import to_money
from services.kernel.principal import SYSTEM, Principal
from services.ledger.book import (
    AUTHORIZE,
    CAPTURING_ACTIONS,
    DUPLICATE_PAYMENT,
    FAILED,
    MANUAL,
    PENDING,
    REFUND,
    SUCCEEDED,
    VOID,
    has_attempt_in_flight,
    last_succeeded,
    open_checkout_sessions,
    order_payments,
    total_of,
)
from services.ledger.events import add_payment_event


@dataclass(frozen=True)
class QueuedPayment:
    transaction_id: str
    job: JobRef


def add_attempt(
    session: Session,
    order: Order,
    *,
    action: str,
    method: str | None,
    amount: Decimal,
    parent: Payment | None,
    token: str | None,
    principal: Principal,
    request_id: str | None,
) -> QueuedPayment:
    """A ``pending`` payment row and its job, in the caller's transaction."""
    now = utcnow()
    transaction_id = new_id("txn")
    job = add_job(
        session,
        PAYMENT,
        args={"transactionId": transaction_id},
        owner=principal,
        order_id=order.id,
        request_id=request_id,
        customer_id=order.customer_id,
    )
    session.add(
        Payment(
            id=transaction_id,
            order_id=order.id,
            gateway_id=order.payment_gateway_id,
            action=action,
            method=method,
            amount=amount,
            currency=order.currency,
            state=PENDING,
            gateway_transaction_id=parent.gateway_transaction_id if parent is not None else None,
            parent_id=parent.id if parent is not None else None,
            # Derived from the attempt: every call for it (first try, retry, redelivery) sends it.
            idempotency_key=f"{transaction_id}:{action}",
            token=token,
            job_id=job.job_id,
            attempts=0,
            created_at=now,
            updated_at=now,
        )
    )
    return QueuedPayment(transaction_id=transaction_id, job=job)


def queue_refund_in(
    session: Session, order: Order, amount: Decimal, *, principal: Principal, request_id: str | None
) -> QueuedPayment | None:
    """A refund of up to ``amount`` against the order's last charge, queued by a lifecycle
    transition in its own transaction (cancelling a paid order or its items, ``completed →
    refunded``). Unlike a refund requested through the API it does not wait for other payment
    actions: it is capped by what is captured and not yet refunded or being refunded, so
    refunds queued side by side never give back more than was paid. ``None``: nothing to refund.
    """
    payments = order_payments(session, order.id)
    charge = last_succeeded(payments, CAPTURING_ACTIONS)
    if charge is None:
        return None
    refundable = total_of(payments, CAPTURING_ACTIONS) - total_of(payments, (REFUND,), (SUCCEEDED, PENDING))
    amount = min(to_money(amount), refundable)
    if amount <= 0:
        return None
    if charge.action == MANUAL:
        # Money received outside the gateway goes back the same way: recorded, not sent.
        record_manual_refund(session, order, charge, amount, refundable)
        return None
    return add_attempt(
        session,
        order,
        action=REFUND,
        method=charge.method,
        amount=amount,
        parent=charge,
        token=None,
        principal=principal,
        request_id=request_id,
    )


def queue_duplicate_refund_in(session: Session, order: Order, payment: Payment, *, request_id: str | None) -> JobRef:
    """A refund of all of ``payment``, a capture that landed on an order already paid for."""
    payment.error = {"code": DUPLICATE_PAYMENT, "message": "The order was already paid; refunded at once."}
    return add_attempt(
        session,
        order,
        action=REFUND,
        method=payment.method,
        amount=payment.amount,
        parent=payment,
        token=None,
        principal=SYSTEM,
        request_id=request_id,
    ).job


def record_manual_refund(session: Session, order: Order, charge: Payment, amount: Decimal, refundable: Decimal) -> None:
    now = utcnow()
    session.add(
        Payment(
            id=new_id("txn"),
            order_id=order.id,
            gateway_id=charge.gateway_id,
            action=REFUND,
            method=MANUAL,
            amount=amount,
            currency=order.currency,
            state=SUCCEEDED,
            parent_id=charge.id,
            idempotency_key=f"manual-refund:{new_id('key')}",
            attempts=0,
            created_at=now,
            updated_at=now,
        )
    )
    order.payment_status = lifecycle.PAYMENT_REFUNDED if amount >= refundable else lifecycle.PAYMENT_PARTIALLY_REFUNDED


def record_manual_payment(session: Session, order: Order, *, principal: Principal, reason: str | None) -> Payment:
    """Staff confirm that the order's outstanding amount was received outside the gateway (cash,
    bank transfer): a succeeded ``manual`` payment, and the order's payment status ``completed``.

    The caller moves the order to ``processing`` in the same transaction. Open checkout sessions
    are closed by the job the transition queues, so the customer cannot pay a second time.
    """
    payments = order_payments(session, order.id)
    outstanding = order.total_amount - total_of(payments, CAPTURING_ACTIONS)
    now = utcnow()
    payment = Payment(
        id=new_id("txn"),
        order_id=order.id,
        gateway_id=order.payment_gateway_id,
        action=MANUAL,
        method=MANUAL,
        amount=to_money(max(outstanding, Decimal(0))),
        currency=order.currency,
        state=SUCCEEDED,
        idempotency_key=f"manual:{order.id}:{order.version}",
        error=None,
        attempts=0,
        created_at=now,
        updated_at=now,
    )
    session.add(payment)
    order.payment_status = lifecycle.PAYMENT_COMPLETED
    add_payment_event(session, order, payment, ORDER_PAYMENT_SUCCEEDED)
    return payment


def queue_void_in(session: Session, order: Order, *, principal: Principal, request_id: str | None) -> JobRef | None:
    """Void the order's open authorization (the order is being cancelled): the hold on the
    customer's card is released instead of waiting for it to lapse."""
    if order.payment_status != lifecycle.PAYMENT_AUTHORIZED:
        return None
    payments = order_payments(session, order.id)
    authorization = last_succeeded(payments, (AUTHORIZE,))
    if authorization is None or any(p.action == VOID and p.state != FAILED for p in payments):
        return None
    return add_attempt(
        session,
        order,
        action=VOID,
        method=authorization.method,
        amount=authorization.amount,
        parent=authorization,
        token=None,
        principal=principal,
        request_id=request_id,
    ).job


def queue_close_checkout_in(
    session: Session, order: Order, *, principal: Principal, request_id: str | None
) -> JobRef | None:
    """A job that expires the order's open hosted checkout sessions at the gateway (the order was
    paid another way, or cancelled), so the customer cannot pay it again through them."""
    if not open_checkout_sessions(session, order.id):
        return None
    return add_job(
        session,
        CLOSE_CHECKOUT,
        args={"orderId": order.id},
        owner=principal,
        order_id=order.id,
        request_id=request_id,
        customer_id=order.customer_id,
    )


# -- the lifecycle's door to money ------------------------------------------------------------


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
    queued = queue_refund_in(session, order, amount, principal=principal, request_id=request_id)
    return queued.job if queued is not None else None


def queue_payment_closing(
    session: Session, order: Order, *, cancelling: bool, principal: Principal, request_id: str | None
) -> list[JobRef]:
    """What an order's money needs when it stops awaiting payment: its open hosted checkout
    sessions closed (paid another way, or cancelled) and, on cancellation, an open card
    authorization voided. Jobs for the caller to send after commit."""
    jobs = [queue_close_checkout_in(session, order, principal=principal, request_id=request_id)]
    if cancelling:
        jobs.append(queue_void_in(session, order, principal=principal, request_id=request_id))
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
    if held or has_attempt_in_flight(session, order.id):
        raise InvalidTransition(
            "The gateway holds or is still taking a payment for this order: capture or void it, or wait for it.",
            details=[{"orderId": order.id, "currentStatus": order.status, "paymentStatus": order.payment_status}],
        )
    record_manual_payment(session, order, principal=principal, reason=reason)
