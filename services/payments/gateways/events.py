"""Stripe-shaped event JSON → :class:`GatewayEvent` (the sandbox emits the same shape).

A webhook body is client text even when its signature is valid (a leaked secret, a gateway bug),
so its shape is checked here rather than trusted: the event, ``data``, ``data.object``, its
``metadata`` and ``last_payment_error`` must be JSON objects, the fields we keep must be strings
that fit their columns, amounts integers of minor units that fit the money column. Anything else
raises ``ValueError`` or ``TypeError``, which ``services.webhooks.receive_webhook`` refuses with
400 ``INVALID_SIGNATURE`` ("not a gateway event") before anything is written.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from services.kernel.jsondepth import MAX_JSON_DEPTH, nests_deeper_than
from services.kernel.money import MAX_AMOUNT, to_money
from services.payments.gateways.base import CHECKOUT_COMPLETED, OTHER, PAYMENT_FAILED, PAYMENT_SUCCEEDED, GatewayEvent

# webhook_events.event_id, checkout_session_id and payments.gateway_transaction_id are 255 long.
MAX_TEXT = 255
MAX_TYPE = 100  # webhook_events.type


def to_minor(amount: Decimal) -> int:
    """Decimal currency units → integer minor units (two-decimal currencies)."""
    return int(to_money(amount) * 100)


MAX_MINOR = to_minor(MAX_AMOUNT)


def from_minor(value: Any) -> Decimal | None:
    return None if value is None else to_money(Decimal(int(value)) / 100)


def parse_event(payload: bytes) -> dict[str, Any]:
    """A webhook body (already verified) as a JSON object; ``ValueError``/``TypeError`` otherwise.

    ``json.loads`` raises ``RecursionError`` (not a ``ValueError``) on deep nesting such as 5,000
    ``[``; that and anything nested deeper than any gateway's events is refused here.
    """
    try:
        event = json.loads(payload)
    except RecursionError:
        raise ValueError(f"the payload nests deeper than {MAX_JSON_DEPTH} levels") from None
    if not isinstance(event, dict):
        raise TypeError("the payload must be a JSON object")
    if nests_deeper_than(event):
        raise ValueError(f"the payload nests deeper than {MAX_JSON_DEPTH} levels")
    return event


def _object(value: Any, where: str) -> dict[str, Any]:
    """A JSON object, or ``{}`` for an absent one."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"{where} must be a JSON object")
    return value


def _text(obj: dict[str, Any], key: str, where: str, max_length: int = MAX_TEXT) -> str | None:
    """A string field that fits its column (PostgreSQL text also refuses NUL), or None."""
    value = obj.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TypeError(f"{where}.{key} must be a string")
    if len(value) > max_length:
        raise ValueError(f"{where}.{key} is longer than {max_length} characters")
    if "\x00" in value:
        raise ValueError(f"{where}.{key} contains the NUL character")
    return value


def _amount(obj: dict[str, Any], key: str, where: str) -> Decimal | None:
    """Integer minor units within the money column (a float such as 1e400 is refused)."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{where}.{key} must be an integer amount in minor units")
    if not 0 <= value <= MAX_MINOR:
        raise ValueError(f"{where}.{key} must be between 0 and {MAX_MINOR}")
    return from_minor(value)


def _currency(obj: dict[str, Any]) -> str | None:
    """The ISO currency code, upper case (Stripe sends it lower case)."""
    value = _text(obj, "currency", "data.object", 3)
    return value.upper() if value else None


def normalize(event: dict[str, Any]) -> GatewayEvent:
    if not isinstance(event, dict):
        raise TypeError("the event must be a JSON object")
    event_id = _text(event, "id", "event") or ""
    event_type = _text(event, "type", "event", MAX_TYPE) or ""
    data = _object(event.get("data"), "data")
    obj = _object(data.get("object"), "data.object")
    meta = _object(obj.get("metadata"), "data.object.metadata")
    where, meta_where = "data.object", "data.object.metadata"
    if event_type in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
        paid = obj.get("payment_status") == "paid"
        return GatewayEvent(
            id=event_id,
            type=event_type,
            kind=CHECKOUT_COMPLETED if paid else OTHER,
            order_id=_text(meta, "orderId", meta_where) or _text(obj, "client_reference_id", where),
            checkout_session_id=_text(obj, "id", where),
            transaction_id=_text(obj, "payment_intent", where),
            amount=_amount(obj, "amount_total", where),
            currency=_currency(obj),
            raw=event,
        )
    if event_type in ("payment_intent.succeeded", "payment_intent.payment_failed"):
        failed = event_type.endswith("payment_failed")
        error = _object(obj.get("last_payment_error"), "data.object.last_payment_error")
        reason = None
        if failed:
            error_where = "data.object.last_payment_error"
            reason = _text(error, "decline_code", error_where) or _text(error, "code", error_where)
        return GatewayEvent(
            id=event_id,
            type=event_type,
            kind=PAYMENT_FAILED if failed else PAYMENT_SUCCEEDED,
            order_id=_text(meta, "orderId", meta_where),
            payment_id=_text(meta, "paymentId", meta_where),
            checkout_session_id=_text(meta, "checkoutSessionId", meta_where),
            transaction_id=_text(obj, "id", where),
            amount=_amount(obj, "amount" if failed else "amount_received", where),
            reason=reason,
            currency=_currency(obj),
            raw=event,
        )
    return GatewayEvent(id=event_id, type=event_type, kind=OTHER, raw=event)
