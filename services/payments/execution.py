"""The payment workflow: request an action, run it at the gateway, and confirm paid orders.

A request writes a ``pending`` payment row and its job in one transaction (the message is sent
after commit). The task then calls the gateway *outside* any transaction, with the payment's
idempotency key, so a redelivered task (worker killed mid-call, retry) reaches the same charge:

- success → the payment ``succeeded`` and, for a capture, the order becomes ``processing``
  (history row, version bump, held stock committed) in one transaction;
- a decline → the payment ``failed`` and the job fails with ``PAYMENT_FAILED`` (never retried);
- "gateway unavailable" → :class:`TransientError`, retried with backoff under the same key;
- a timeout → the outcome is unknown: the payment stays ``pending`` for reconciliation.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from models import Database, Order, Payment
from models.types import utcnow
from services.changes import transitions
from services.events.record import ORDER_PAYMENT_FAILED
from services.jobs.outbox import JobOutcome
from services.kernel import lifecycle
from services.kernel.errors import InvalidTransition, PaymentDeclined, TransientError, ValidationFailed
from services.kernel.principal import SYSTEM
from services.ledger.attempts import queue_close_checkout_in
from services.ledger.book import (
    AUTHORIZE,
    CAPTURE,
    CAPTURING_ACTIONS,
    FAILED,
    PROCESS,
    REFUND,
    SUCCEEDED,
    VOID,
    is_duplicate,
    order_payments,
    total_of,
)
from services.ledger.events import add_payment_event
from services.payments.confirmation import confirm_payment, set_payment_status
from services.payments.gateways.base import GatewayDeclined, GatewayTimeout, GatewayUnavailable
from services.payments.gateways.registry import Gateways
from services.payments.requests import not_payable_error


@dataclass(frozen=True)
class _Attempt:
    id: str
    order_id: str
    gateway_id: str
    action: str
    amount: Decimal
    currency: str
    token: str | None
    idempotency_key: str
    gateway_transaction_id: str | None


def _result(order: Order, payment: Payment) -> dict[str, Any]:
    return {"orderId": order.id, "paymentStatus": order.payment_status, "transactionId": payment.id}


def _declined(payment: Payment) -> PaymentDeclined:
    error = payment.error or {}
    return PaymentDeclined(
        error.get("message") or "The payment was declined.",
        details=[{"reason": error.get("reason", "declined"), "transactionId": payment.id}],
    )


def _start(db: Database, transaction_id: str) -> _Attempt | dict[str, Any]:
    """Lock the payment, answer at once if it already finished, else count the attempt."""
    refusal: InvalidTransition | None = None
    with db.transaction() as session:
        started = _start_in(session, transaction_id)
        if isinstance(started, InvalidTransition):
            refusal = started
    if refusal is not None:
        raise refusal
    return started  # type: ignore[return-value]


def _start_in(session: Session, transaction_id: str) -> _Attempt | dict[str, Any] | InvalidTransition:
    payment = session.get(Payment, transaction_id, with_for_update=True)
    if payment is None:
        raise ValidationFailed("Unknown payment.", details=[{"transactionId": transaction_id}])
    order = session.get(Order, payment.order_id, with_for_update=True)
    assert order is not None
    if payment.state == SUCCEEDED:
        return _result(order, payment)
    if payment.state == FAILED:
        raise _declined(payment)
    if (
        payment.action in (PROCESS, AUTHORIZE, CAPTURE)
        and payment.attempts == 0
        and order.status != lifecycle.PENDING_PAYMENT
    ):
        # Paid another way (hosted checkout) or cancelled before this attempt reached the gateway.
        payment.state = FAILED
        payment.error = {"code": "INVALID_STATUS", "reason": "order_not_payable", "message": "Not payable."}
        return not_payable_error(order, "The order is no longer awaiting payment.")
    payment.attempts += 1
    payment.updated_at = utcnow()
    return _Attempt(
        payment.id,
        order.id,
        payment.gateway_id,
        payment.action,
        payment.amount,
        payment.currency,
        payment.token,
        payment.idempotency_key,
        payment.gateway_transaction_id,
    )


def _call_gateway(gateways: Gateways, attempt: _Attempt) -> str | None:
    """One gateway call for the attempt; returns the gateway's transaction id."""
    gateway = gateways.get(attempt.gateway_id)
    if attempt.action in (PROCESS, AUTHORIZE):
        charge = gateway.charge(
            amount=attempt.amount,
            currency=attempt.currency,
            token=attempt.token or "",
            capture=attempt.action == PROCESS,
            idempotency_key=attempt.idempotency_key,
            metadata={"orderId": attempt.order_id, "paymentId": attempt.id},
        )
        return charge.transaction_id
    if attempt.action == CAPTURE:
        assert attempt.gateway_transaction_id is not None
        gateway.capture(attempt.gateway_transaction_id, amount=attempt.amount, idempotency_key=attempt.idempotency_key)
        return attempt.gateway_transaction_id
    if attempt.action == VOID:
        assert attempt.gateway_transaction_id is not None
        gateway.void(attempt.gateway_transaction_id, idempotency_key=attempt.idempotency_key)
        return attempt.gateway_transaction_id
    if attempt.gateway_transaction_id is None:
        return None  # the refund of a manual payment: given back outside the gateway, recorded here
    refund = gateway.refund(
        attempt.gateway_transaction_id, amount=attempt.amount, idempotency_key=attempt.idempotency_key
    )
    return refund.refund_id


def _finish_success(db: Database, attempt: _Attempt, gateway_txn: str | None, request_id: str | None) -> JobOutcome:
    with db.transaction() as session:
        payment = session.get(Payment, attempt.id, with_for_update=True)
        order = session.get(Order, attempt.order_id, with_for_update=True)
        assert payment is not None and order is not None
        if payment.state == SUCCEEDED:
            return JobOutcome(_result(order, payment))
        actor = f"gateway:{attempt.gateway_id}"
        if attempt.action == REFUND:
            payment.gateway_transaction_id = gateway_txn
        jobs = confirm_payment(
            session,
            order,
            payment,
            transaction_id=gateway_txn,
            actor=actor,
            reason=f"payment captured ({attempt.action})",
            request_id=request_id,
        )
        if attempt.action == AUTHORIZE:
            set_payment_status(order, lifecycle.PAYMENT_AUTHORIZED)
            # The card is held for this order: its hosted checkout must not take a second payment.
            close = queue_close_checkout_in(session, order, principal=SYSTEM, request_id=request_id)
            jobs += [close] if close is not None else []
        elif attempt.action == VOID:
            set_payment_status(order, lifecycle.PAYMENT_VOIDED)
        elif attempt.action == REFUND and _is_duplicate_id(session, payment.parent_id):
            pass  # a duplicate capture given back: the order's own payment status is unchanged
        elif attempt.action == REFUND:
            payments = order_payments(session, order.id)
            left = total_of(payments, CAPTURING_ACTIONS) - total_of(payments, (REFUND,))
            set_payment_status(order, lifecycle.PAYMENT_REFUNDED if left <= 0 else lifecycle.PAYMENT_PARTIALLY_REFUNDED)
            if left <= 0 and lifecycle.order_transition_allowed(order.status, lifecycle.REFUNDED):
                # payment_status is already "refunded", so the transition queues no second refund
                transitions.transition_order(
                    session,
                    order,
                    lifecycle.REFUNDED,
                    reason="payment refunded in full",
                    principal=SYSTEM,
                    actor=actor,
                    request_id=request_id,
                )
        return JobOutcome(_result(order, payment), send=jobs)


def _is_duplicate_id(session: Session, payment_id: str | None) -> bool:
    parent = session.get(Payment, payment_id) if payment_id else None
    return parent is not None and is_duplicate(parent)


def _finish_declined(db: Database, attempt: _Attempt, declined: GatewayDeclined) -> PaymentDeclined:
    with db.transaction() as session:
        payment = session.get(Payment, attempt.id, with_for_update=True)
        order = session.get(Order, attempt.order_id, with_for_update=True)
        assert payment is not None and order is not None
        payment.state = FAILED
        payment.error = {"code": "PAYMENT_FAILED", "reason": declined.reason, "message": declined.message}
        if attempt.action in (PROCESS, AUTHORIZE):
            payment.gateway_transaction_id = payment.gateway_transaction_id or declined.transaction_id
            if order.status == lifecycle.PENDING_PAYMENT:
                set_payment_status(order, lifecycle.PAYMENT_FAILED)
        payment.updated_at = utcnow()
        add_payment_event(session, order, payment, ORDER_PAYMENT_FAILED)
        return _declined(payment)


def _finish_unknown(db: Database, attempt: _Attempt, timeout: GatewayTimeout) -> dict[str, Any]:
    with db.transaction() as session:
        payment = session.get(Payment, attempt.id, with_for_update=True)
        order = session.get(Order, attempt.order_id, with_for_update=True)
        assert payment is not None and order is not None
        payment.error = {"code": "GATEWAY_TIMEOUT", "message": f"Outcome unknown: {timeout}"}
        payment.updated_at = utcnow()
        if attempt.action in (PROCESS, AUTHORIZE) and order.status == lifecycle.PENDING_PAYMENT:
            set_payment_status(order, lifecycle.PAYMENT_PENDING)
        return {"orderId": order.id, "paymentStatus": lifecycle.PAYMENT_PENDING, "transactionId": payment.id}


def execute_payment(
    db: Database, gateways: Gateways, args: dict[str, Any], *, request_id: str | None = None
) -> dict[str, Any] | JobOutcome:
    """Run one payment attempt at its gateway; safe to run again for the same attempt.

    ``request_id``: the request that queued the attempt, recorded on the history rows it writes."""
    started = _start(db, args["transactionId"])
    if isinstance(started, dict):
        return started
    try:
        gateway_txn = _call_gateway(gateways, started)
    except GatewayDeclined as declined:
        raise _finish_declined(db, started, declined) from None
    except GatewayUnavailable as exc:
        raise TransientError(f"gateway unavailable: {exc}") from exc
    except GatewayTimeout as timeout:
        return _finish_unknown(db, started, timeout)
    return _finish_success(db, started, gateway_txn, request_id)
