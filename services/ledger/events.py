"""``order.payment_succeeded`` / ``order.payment_failed``: one event when a payment row settles,
written in the transaction that settles it (the payment task, a gateway webhook, the checkout
return, reconciliation, or staff recording money received outside the gateway)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from models import Order, Payment
from services.events.record import add_event


def add_payment_event(session: Session, order: Order, payment: Payment, event_type: str) -> None:
    error = payment.error or {}
    data = {
        "orderId": order.id,
        "transactionId": payment.id,
        "action": payment.action,
        "method": payment.method,
        "amount": payment.amount,
        "currency": payment.currency,
        "gatewayId": payment.gateway_id,
        "reason": error.get("reason") if error else None,
    }
    add_event(session.connection(), event_type, order_id=order.id, customer_id=order.customer_id, data=data)
