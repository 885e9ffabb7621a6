"""Stripe-shaped event JSON → :class:`GatewayEvent` (the sandbox emits the same shape)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from services.gateways.base import CHECKOUT_COMPLETED, OTHER, PAYMENT_FAILED, PAYMENT_SUCCEEDED, GatewayEvent
from services.money import to_money


def to_minor(amount: Decimal) -> int:
    """Decimal currency units → integer minor units (two-decimal currencies)."""
    return int(to_money(amount) * 100)


def from_minor(value: Any) -> Decimal | None:
    return None if value is None else to_money(Decimal(int(value)) / 100)


def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(obj.get("metadata") or {})


def _currency(obj: dict[str, Any]) -> str | None:
    value = obj.get("currency")
    return value.upper() if isinstance(value, str) else None


def normalize(event: dict[str, Any]) -> GatewayEvent:
    event_id = str(event.get("id") or "")
    event_type = str(event.get("type") or "")
    obj: dict[str, Any] = dict((event.get("data") or {}).get("object") or {})
    meta = _metadata(obj)
    if event_type in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
        paid = obj.get("payment_status") == "paid"
        return GatewayEvent(
            id=event_id,
            type=event_type,
            kind=CHECKOUT_COMPLETED if paid else OTHER,
            order_id=meta.get("orderId") or obj.get("client_reference_id"),
            checkout_session_id=obj.get("id"),
            transaction_id=obj.get("payment_intent"),
            amount=from_minor(obj.get("amount_total")),
            currency=_currency(obj),
            raw=event,
        )
    if event_type in ("payment_intent.succeeded", "payment_intent.payment_failed"):
        failed = event_type.endswith("payment_failed")
        error = obj.get("last_payment_error") or {}
        return GatewayEvent(
            id=event_id,
            type=event_type,
            kind=PAYMENT_FAILED if failed else PAYMENT_SUCCEEDED,
            order_id=meta.get("orderId"),
            payment_id=meta.get("paymentId"),
            checkout_session_id=meta.get("checkoutSessionId"),
            transaction_id=obj.get("id"),
            amount=from_minor(obj.get("amount_received") if not failed else obj.get("amount")),
            currency=_currency(obj),
            reason=(error.get("decline_code") or error.get("code")) if failed else None,
            raw=event,
        )
    return GatewayEvent(id=event_id, type=event_type, kind=OTHER, raw=event)
