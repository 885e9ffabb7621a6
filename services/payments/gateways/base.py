"""The one interface every payment gateway adapter implements, and what it answers.

Adapters translate their gateway's wire format into these types and their errors into three
exceptions: :class:`GatewayDeclined` (a definite "no": never retried), :class:`GatewayUnavailable`
(a definite "not done, try again": retried with the same idempotency key) and
:class:`GatewayTimeout` (no answer: the outcome is unknown and is left for reconciliation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

# Normalised webhook event kinds.
CHECKOUT_COMPLETED = "checkout_completed"
PAYMENT_SUCCEEDED = "payment_succeeded"
PAYMENT_FAILED = "payment_failed"
OTHER = "other"


class GatewayError(Exception):
    """Base of what adapters raise."""


class GatewayDeclined(GatewayError):
    def __init__(self, reason: str, message: str = "", transaction_id: str | None = None) -> None:
        self.reason = reason
        self.message = message or reason
        self.transaction_id = transaction_id
        super().__init__(f"declined: {reason}")


class GatewayUnavailable(GatewayError):
    """The gateway answered that it did not do it (rate limit, 5xx before processing)."""


class GatewayTimeout(GatewayError):
    """No answer: the gateway may or may not have acted."""


class WebhookSignatureError(GatewayError):
    """A webhook whose signature is missing, wrong, or too old."""


class SettlementUnsupported(GatewayError):
    """The adapter cannot list the gateway's captures and refunds (no settlement report for it)."""


@dataclass(frozen=True)
class ChargeResult:
    transaction_id: str
    status: str  # "succeeded" (captured) or "authorized"
    amount: Decimal


@dataclass(frozen=True)
class RefundResult:
    refund_id: str
    amount: Decimal


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str


@dataclass(frozen=True)
class CheckoutState:
    id: str
    paid: bool
    status: str  # "open", "complete", "expired"
    transaction_id: str | None
    amount: Decimal | None
    order_id: str | None
    currency: str | None = None  # ISO code, upper case


@dataclass(frozen=True)
class LedgerEntry:
    """Money that moved at the gateway: a capture (``id`` = the charge) or a refund (the refund's id)."""

    id: str
    kind: str  # "capture" or "refund"
    amount: Decimal
    currency: str
    at: datetime


@dataclass(frozen=True)
class GatewayEvent:
    """A verified webhook event in the service's terms."""

    id: str
    type: str
    kind: str
    order_id: str | None = None
    payment_id: str | None = None
    checkout_session_id: str | None = None
    transaction_id: str | None = None
    amount: Decimal | None = None
    currency: str | None = None  # ISO code, upper case
    reason: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


class Gateway(Protocol):
    gateway_id: str
    signature_header: str

    def charge(
        self,
        *,
        amount: Decimal,
        currency: str,
        token: str,
        capture: bool,
        idempotency_key: str,
        metadata: dict[str, str],
    ) -> ChargeResult: ...

    def capture(self, transaction_id: str, *, amount: Decimal, idempotency_key: str) -> ChargeResult: ...

    def void(self, transaction_id: str, *, idempotency_key: str) -> None: ...

    def refund(self, transaction_id: str, *, amount: Decimal, idempotency_key: str) -> RefundResult: ...

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
    ) -> CheckoutSession: ...

    def retrieve_checkout_session(self, session_id: str) -> CheckoutState: ...

    def expire_checkout(self, session_id: str) -> CheckoutState:
        """Close an open checkout session so it can no longer be paid; returns the session's state
        afterwards (``expired``, or ``complete`` when the customer paid before it closed)."""
        ...

    def parse_webhook(self, payload: bytes, signature: str | None) -> GatewayEvent: ...

    def settlement_entries(self, start: datetime, end: datetime) -> list[LedgerEntry]:
        """Captures and refunds booked in ``[start, end)``; :class:`SettlementUnsupported` if it cannot say."""
        ...
