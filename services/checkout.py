"""Hosted checkout: the step queued with every new order, the redirect, and the customer's return.

The checkout task opens a session at the order's gateway (idempotency key derived from the order,
so a retried task reuses the session) and stores its URL on the order; ``paymentUrl`` redirects
there. Paying leads to the order becoming ``processing`` through the gateway's signed webhook and,
independently, through the customer's return to ``success_url`` (which asks the gateway): both
take the order lock and apply the same idempotent confirmation, so whichever comes second finds
the work done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models import Database, Order
from services import lifecycle
from services.errors import OrderNotFound, PaymentDeclined, ServiceUnavailable, TransientError, ValidationFailed
from services.gateways import Gateways
from services.gateways.base import GatewayDeclined, GatewayTimeout, GatewayUnavailable
from services.payments import confirm_payment
from services.webhooks import apply_waiting_for, checkout_payment


@dataclass(frozen=True)
class CheckoutLinks:
    """Where the gateway sends the customer back (the service's public URLs)."""

    base_url: str

    def success(self, order_id: str) -> str:
        return f"{self.base_url}/api/orders/{order_id}/checkout/complete?session_id={{CHECKOUT_SESSION_ID}}"

    def cancel(self, order_id: str) -> str:
        return f"{self.base_url}/api/orders/{order_id}/checkout/cancelled"


@dataclass(frozen=True)
class CheckoutStatus:
    order_id: str
    status: str
    payment_status: str


def open_checkout(db: Database, gateways: Gateways, links: CheckoutLinks, args: dict[str, Any]) -> dict[str, Any]:
    """Open the order's hosted checkout session once and store its URL on the order."""
    order_id = args["orderId"]
    with db.reader() as session:
        order = session.get(Order, order_id)
        if order is None:
            raise OrderNotFound(details=[{"orderId": order_id}])
        if order.checkout_url or order.status != lifecycle.PENDING_PAYMENT:
            return {"orderId": order.id, "status": order.status, "checkoutUrl": order.checkout_url}
        amount, currency, gateway_id = order.total_amount, order.currency, order.payment_gateway_id
        expires = order.hold_expires_at
    gateway = gateways.get(gateway_id)
    try:
        opened = gateway.create_checkout_session(
            amount=amount,
            currency=currency,
            order_id=order_id,
            success_url=links.success(order_id),
            cancel_url=links.cancel(order_id),
            expires_at=expires,
            idempotency_key=f"checkout:{order_id}",
        )
    except (GatewayUnavailable, GatewayTimeout) as exc:
        raise TransientError(f"checkout session not opened: {exc}") from exc
    except GatewayDeclined as exc:
        raise PaymentDeclined(
            "The gateway refused to open a checkout session.", details=[{"reason": exc.reason}]
        ) from None
    with db.transaction() as session:
        order = session.get(Order, order_id, with_for_update=True)
        assert order is not None
        if order.checkout_url is None:
            order.checkout_url = opened.url
        checkout_payment(session, order, gateway_id, opened.id, amount)
        apply_waiting_for(session, order_id=order_id, checkout_session_id=opened.id)
        return {"orderId": order.id, "status": order.status, "checkoutUrl": order.checkout_url}


def checkout_url(db: Database, order_id: str) -> str | None:
    """The gateway page of the order's checkout, once the checkout task has opened it."""
    with db.reader() as session:
        order = session.get(Order, order_id)
        if order is None:
            raise OrderNotFound(details=[{"orderId": order_id}])
        return order.checkout_url


def complete_checkout(db: Database, gateways: Gateways, order_id: str, session_id: str) -> CheckoutStatus:
    """The customer came back from the gateway: ask it, and confirm the order if it was paid."""
    with db.reader() as session:
        order = session.get(Order, order_id)
        if order is None:
            raise OrderNotFound(details=[{"orderId": order_id}])
        gateway_id = order.payment_gateway_id
    try:
        state = gateways.get(gateway_id).retrieve_checkout_session(session_id)
    except GatewayDeclined:
        raise ValidationFailed("Unknown checkout session.", details=[{"field": "session_id"}]) from None
    except (GatewayUnavailable, GatewayTimeout):
        raise ServiceUnavailable("The payment gateway did not answer; the order updates when it does.") from None
    if state.order_id not in (None, order_id):
        raise ValidationFailed("The checkout session belongs to another order.", details=[{"field": "session_id"}])
    with db.transaction() as session:
        order = session.get(Order, order_id, with_for_update=True)
        assert order is not None
        if state.paid:
            payment = checkout_payment(session, order, gateway_id, session_id, state.amount)
            confirm_payment(
                session,
                order,
                payment,
                transaction_id=state.transaction_id,
                actor=f"gateway:{gateway_id}",
                reason="payment confirmed on return from checkout",
            )
        return CheckoutStatus(order.id, order.status, order.payment_status)
