"""Payment requests: check that an action may run now, and record its attempt.

A request writes a ``pending`` payment row and its job in one transaction (the message is sent
after commit); :mod:`services.payments.execution` then runs it at the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from models import Database, Order, Payment
from services.kernel import lifecycle
from services.kernel.errors import InvalidTransition, OrderNotFound, ValidationFailed
from services.kernel.money import to_money
from services.kernel.principal import Principal
from services.ledger.attempts import QueuedPayment, add_attempt
from services.ledger.book import (
    ACTIONS,
    AUTHORIZE,
    CAPTURE,
    CAPTURING_ACTIONS,
    CHECKOUT,
    PENDING,
    PROCESS,
    REFUND,
    VOID,
    last_succeeded,
    order_payments,
    total_of,
)


@dataclass(frozen=True)
class PaymentRequest:
    order_id: str
    action: str
    method: str
    token: str | None
    amount: Decimal | None


def not_payable_error(order: Order, message: str) -> InvalidTransition:
    return InvalidTransition(
        message,
        details=[
            {
                "currentStatus": order.status,
                "paymentStatus": order.payment_status,
                "allowedTransitions": list(lifecycle.ORDER_TRANSITIONS.get(order.status, ())),
            }
        ],
    )


def _amount_error(message: str, **extra: Any) -> ValidationFailed:
    return ValidationFailed(message, details=[{"field": "paymentDetails.amount", "message": message, **extra}])


def plan_payment(order: Order, payments: list[Payment], command: PaymentRequest) -> tuple[Decimal, Payment | None]:
    """Check that ``command`` may run now; returns the amount and the payment it acts on."""
    in_flight = [p.id for p in payments if p.state == PENDING and p.action != CHECKOUT]
    if in_flight:
        raise InvalidTransition(
            "Another payment action for this order has not finished (or its outcome is still unknown).",
            details=[{"currentStatus": order.status, "paymentStatus": order.payment_status, "pending": in_flight}],
        )
    action = command.action
    if action in (PROCESS, AUTHORIZE):
        if order.status != lifecycle.PENDING_PAYMENT or order.payment_status in (
            *lifecycle.PAYMENT_CAPTURED_STATUSES,
            lifecycle.PAYMENT_AUTHORIZED,
            lifecycle.PAYMENT_REFUNDED,
        ):
            raise not_payable_error(order, "The order is not awaiting payment.")
        missing = [
            {"field": f"paymentDetails.{name}", "message": f"required for {action}"}
            for name, value in (("token", command.token), ("amount", command.amount))
            if value is None
        ]
        if missing:
            raise ValidationFailed(details=missing)
        outstanding = order.total_amount - total_of(payments, CAPTURING_ACTIONS)
        if to_money(command.amount) != outstanding:
            raise _amount_error("must equal the order's outstanding amount", expected=outstanding)
        return outstanding, None
    if action in (CAPTURE, VOID):
        authorization = last_succeeded(payments, (AUTHORIZE,))
        if order.payment_status != lifecycle.PAYMENT_AUTHORIZED or authorization is None:
            raise not_payable_error(order, f"Nothing to {action}: the order has no open authorization.")
        if action == CAPTURE and order.status != lifecycle.PENDING_PAYMENT:
            # A cancelled order's authorization is voided, never captured.
            raise not_payable_error(order, f"A {order.status} order cannot be captured.")
        if action == CAPTURE and command.amount is not None and to_money(command.amount) != authorization.amount:
            raise _amount_error("must equal the authorized amount", expected=authorization.amount)
        return authorization.amount, authorization
    # refund
    charge = last_succeeded(payments, CAPTURING_ACTIONS)
    if order.payment_status not in lifecycle.PAYMENT_CAPTURED_STATUSES or charge is None:
        raise not_payable_error(order, "Nothing to refund: no captured payment.")
    refundable = total_of(payments, CAPTURING_ACTIONS) - total_of(payments, (REFUND,))
    amount = refundable if command.amount is None else to_money(command.amount)
    if amount <= 0 or amount > refundable:
        raise _amount_error("must be more than 0 and at most the refundable amount", refundable=refundable)
    return amount, charge


def request_payment(
    db: Database, principal: Principal, command: PaymentRequest, *, request_id: str | None = None
) -> QueuedPayment:
    """Record a payment attempt and queue its task (the caller sends the message after commit)."""
    if command.action not in ACTIONS:
        raise ValidationFailed(details=[{"field": "action", "message": f"one of {list(ACTIONS)}"}])
    if command.action == REFUND:
        # Giving money back is staff's decision: a customer refunding its own shipped order would
        # keep the goods and the money. Checked before the order, so it reveals nothing about it.
        principal.require_role("admin", "ops")
    with db.transaction() as session:
        order = session.get(Order, command.order_id, with_for_update=True)
        if order is None or not principal.can_see_customer(order.customer_id):
            raise OrderNotFound(details=[{"orderId": command.order_id}])
        amount, parent = plan_payment(order, order_payments(session, order.id), command)
        return add_attempt(
            session,
            order,
            action=command.action,
            method=command.method,
            amount=amount,
            parent=parent,
            token=command.token if command.action in (PROCESS, AUTHORIZE) else None,
            principal=principal,
            request_id=request_id,
        )
