"""The Stripe adapter: the official SDK's PaymentIntents, Checkout Sessions, Refunds and webhooks.

``api_base`` points the SDK at another host (the tests' local stand-in). The SDK's own retries are
off: the task runner retries transient failures with backoff, always with the attempt's
idempotency key, so Stripe answers a repeated request with the first one's result.
"""

from __future__ import annotations

import time
from datetime import datetime
from decimal import Decimal
from typing import Any

import stripe

from services.payments.gateways.base import (
    ChargeResult,
    CheckoutSession,
    CheckoutState,
    GatewayDeclined,
    GatewayEvent,
    GatewayTimeout,
    GatewayUnavailable,
    LedgerEntry,
    RefundResult,
    SettlementUnsupported,
    WebhookSignatureError,
)
from services.payments.gateways.events import from_minor, normalize, parse_event, to_minor


def _translate(exc: stripe.StripeError) -> Exception:
    """Stripe's errors in the adapter's three kinds."""
    if isinstance(exc, stripe.CardError):
        error = exc.error
        intent = getattr(error, "payment_intent", None) if error is not None else None
        reason = (getattr(error, "decline_code", None) or exc.code or "card_declined") if error else "card_declined"
        return GatewayDeclined(
            str(reason), exc.user_message or str(exc), getattr(intent, "id", None) if intent else None
        )
    if isinstance(exc, stripe.APIConnectionError):
        # The request may have reached Stripe: the outcome is unknown.
        return GatewayTimeout(str(exc))
    if isinstance(exc, stripe.RateLimitError) or (exc.http_status or 0) >= 500:
        return GatewayUnavailable(str(exc))
    return GatewayDeclined(exc.code or "invalid_request", exc.user_message or str(exc))


def _session_expiry(expires_at: datetime) -> int:
    """Stripe accepts 30 minutes to 24 hours ahead; the hold window is kept inside that range."""
    now = time.time()
    return int(min(max(expires_at.timestamp(), now + 31 * 60), now + 24 * 3600 - 60))


class StripeGateway:
    signature_header = "Stripe-Signature"

    def __init__(
        self,
        gateway_id: str,
        *,
        api_key: str,
        webhook_secret: str,
        api_base: str | None = None,
        tolerance_seconds: int = 300,
        timeout_seconds: float = 30.0,
    ) -> None:
        self.gateway_id = gateway_id
        self.webhook_secret = webhook_secret
        self.tolerance_seconds = tolerance_seconds
        http_client = stripe.RequestsClient(timeout=timeout_seconds)
        self.client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=0,
            http_client=http_client,
        )

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except stripe.StripeError as exc:
            raise _translate(exc) from exc

    def charge(
        self,
        *,
        amount: Decimal,
        currency: str,
        token: str,
        capture: bool,
        idempotency_key: str,
        metadata: dict[str, str],
    ) -> ChargeResult:
        intent = self._call(
            self.client.v1.payment_intents.create,
            params={
                "amount": to_minor(amount),
                "currency": currency.lower(),
                "payment_method_types": ["card"],
                "payment_method_data": {"type": "card", "card": {"token": token}},
                "confirm": True,
                "capture_method": "automatic" if capture else "manual",
                "metadata": metadata,
            },
            options={"idempotency_key": idempotency_key},
        )
        return self._intent_result(intent)

    @staticmethod
    def _intent_result(intent: Any) -> ChargeResult:
        status = intent.status
        if status == "succeeded":
            return ChargeResult(intent.id, "succeeded", from_minor(intent.amount_received or intent.amount))
        if status == "requires_capture":
            return ChargeResult(intent.id, "authorized", from_minor(intent.amount_capturable or intent.amount))
        if status == "processing":
            raise GatewayTimeout(f"payment intent {intent.id} is still processing")
        error = getattr(intent, "last_payment_error", None)
        reason = (getattr(error, "decline_code", None) or getattr(error, "code", None)) if error else status
        raise GatewayDeclined(str(reason), transaction_id=intent.id)

    def capture(self, transaction_id: str, *, amount: Decimal, idempotency_key: str) -> ChargeResult:
        intent = self._call(
            self.client.v1.payment_intents.capture,
            transaction_id,
            params={"amount_to_capture": to_minor(amount)},
            options={"idempotency_key": idempotency_key},
        )
        return self._intent_result(intent)

    def void(self, transaction_id: str, *, idempotency_key: str) -> None:
        self._call(self.client.v1.payment_intents.cancel, transaction_id, options={"idempotency_key": idempotency_key})

    def refund(self, transaction_id: str, *, amount: Decimal, idempotency_key: str) -> RefundResult:
        refund = self._call(
            self.client.v1.refunds.create,
            params={"payment_intent": transaction_id, "amount": to_minor(amount)},
            options={"idempotency_key": idempotency_key},
        )
        if refund.status in ("failed", "canceled"):
            raise GatewayDeclined(refund.failure_reason or "refund_failed", transaction_id=refund.id)
        return RefundResult(refund.id, from_minor(refund.amount))

    def create_checkout_session(
        self,
        *,
        amount: Decimal,
        currency: str,
        order_id: str,
        success_url: str,
        cancel_url: str,
        expires_at: datetime,
        idempotency_key: str,
    ) -> CheckoutSession:
        session = self._call(
            self.client.v1.checkout.sessions.create,
            params={
                "mode": "payment",
                "line_items": [
                    {
                        "quantity": 1,
                        "price_data": {
                            "currency": currency.lower(),
                            "unit_amount": to_minor(amount),
                            "product_data": {"name": f"Order {order_id}"},
                        },
                    }
                ],
                "client_reference_id": order_id,
                "metadata": {"orderId": order_id},
                "payment_intent_data": {"metadata": {"orderId": order_id}},
                "success_url": success_url,
                "cancel_url": cancel_url,
                "expires_at": _session_expiry(expires_at),
            },
            options={"idempotency_key": idempotency_key},
        )
        return CheckoutSession(session.id, session.url)

    def retrieve_checkout_session(self, session_id: str) -> CheckoutState:
        return self._state(self._call(self.client.v1.checkout.sessions.retrieve, session_id))

    def expire_checkout(self, session_id: str) -> CheckoutState:
        """``POST /v1/checkout/sessions/{id}/expire``; Stripe refuses it for a session that is not
        open (already paid or expired), which then answers with what the session is."""
        try:
            return self._state(self._call(self.client.v1.checkout.sessions.expire, session_id))
        except GatewayDeclined:
            return self.retrieve_checkout_session(session_id)

    @staticmethod
    def _state(session: Any) -> CheckoutState:
        metadata = session.metadata.to_dict() if session.metadata else {}
        return CheckoutState(
            id=session.id,
            paid=session.payment_status == "paid",
            status=session.status,
            transaction_id=session.payment_intent if isinstance(session.payment_intent, str) else None,
            amount=from_minor(session.amount_total),
            order_id=metadata.get("orderId") or session.client_reference_id,
            currency=session.currency.upper() if isinstance(session.currency, str) else None,
        )

    def settlement_entries(self, start: datetime, end: datetime) -> list[LedgerEntry]:
        """Not implemented: Stripe's balance transactions name charges (``ch_…``), not the payment
        intents our payments record, so matching needs ``expand[]=data.source`` and paging through
        ``/v1/balance_transactions``; until then there is no settlement report for Stripe."""
        raise SettlementUnsupported(
            f"gateway {self.gateway_id}: settlement reports are not supported for the stripe adapter yet "
            "(Stripe's balance transactions would have to be listed and matched to payment intents)"
        )

    def parse_webhook(self, payload: bytes, signature: str | None) -> GatewayEvent:
        try:
            stripe.WebhookSignature.verify_header(payload, signature, self.webhook_secret, self.tolerance_seconds)
        except stripe.SignatureVerificationError as exc:
            raise WebhookSignatureError(str(exc)) from exc
        except ValueError as exc:
            raise WebhookSignatureError(f"malformed payload: {exc}") from exc
        # The body is parsed by us, not by ``construct_event``: the SDK assumes a JSON object (a
        # signed ``[1,2]`` raised AttributeError) and lets RecursionError through (both were 500s).
        return normalize(parse_event(payload))
