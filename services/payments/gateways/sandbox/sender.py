"""The sandbox's webhook sender: Stripe-shaped events, HMAC-signed, POSTed back to the service."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from services.payments.gateways import signing
from services.payments.gateways.base import (
    GatewayDeclined,
)
from services.payments.gateways.events import to_minor
from services.payments.gateways.sandbox.books import SIGNATURE_HEADER
from services.payments.gateways.sandbox.hosted import HostedPage

log = logging.getLogger(__name__)

Deliver = Callable[[str, bytes, dict[str, str]], None]


def http_deliver(url: str, body: bytes, headers: dict[str, str], attempts: int = 6) -> None:
    """POST a webhook from a background thread, retrying with backoff like a gateway does."""

    def run() -> None:
        delay = 0.2
        for attempt in range(1, attempts + 1):
            try:
                response = requests.post(url, data=body, headers=headers, timeout=10)
                if response.status_code < 300:
                    return
                log.warning("sandbox webhook answered %s (attempt %s)", response.status_code, attempt)
            except requests.RequestException as exc:
                log.warning("sandbox webhook not delivered (attempt %s): %r", attempt, exc)
            time.sleep(delay)
            delay = min(delay * 2.5, 10)

    threading.Thread(target=run, name="sandbox-webhook", daemon=True).start()


class WebhookSender:
    """Building, signing and delivering the sandbox's events (a part of :class:`SandboxGateway`)."""

    gateway_id: str
    base_url: str
    webhook_secret: str
    deliver: Deliver

    def _completed_event(self, session_id: str, page: HostedPage, intent_id: str) -> dict[str, Any]:
        return {
            "id": f"evt_{session_id}_completed",
            "object": "event",
            "type": "checkout.session.completed",
            "created": int(time.time()),
            "data": {
                "object": {
                    "id": session_id,
                    "object": "checkout.session",
                    "status": "complete",
                    "payment_status": "paid",
                    "payment_intent": intent_id,
                    "amount_total": to_minor(page.amount),
                    "currency": page.currency.lower(),
                    "client_reference_id": page.order_id,
                    "metadata": {"orderId": page.order_id},
                }
            },
        }

    def _intent_failed_event(self, session_id: str, page: HostedPage, declined: GatewayDeclined) -> dict[str, Any]:
        return {
            "id": f"evt_{declined.transaction_id or session_id}_failed",
            "object": "event",
            "type": "payment_intent.payment_failed",
            "created": int(time.time()),
            "data": {
                "object": {
                    "id": declined.transaction_id,
                    "object": "payment_intent",
                    "status": "requires_payment_method",
                    "amount": to_minor(page.amount),
                    "currency": page.currency.lower(),
                    "last_payment_error": {"code": "card_declined", "decline_code": declined.reason},
                    "metadata": {"orderId": page.order_id, "checkoutSessionId": session_id},
                }
            },
        }

    def signed(self, event: dict[str, Any], timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
        """The body and headers of a webhook delivery of ``event``."""
        body = json.dumps(event, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signing.sign(body, self.webhook_secret, timestamp),
        }
        return body, headers

    def send_event(self, event: dict[str, Any]) -> None:
        body, headers = self.signed(event)
        self.deliver(f"{self.base_url}/api/payments/webhooks/{self.gateway_id}", body, headers)
