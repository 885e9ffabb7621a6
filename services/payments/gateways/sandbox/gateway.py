"""The built-in sandbox gateway: offline, behaving like a card gateway's test mode.

Tokens: ``tok_visa`` succeeds, ``tok_chargeDeclined`` is declined (``card_declined``),
``tok_insufficientFunds`` is declined with ``insufficient_funds``, ``tok_timeout`` never answers
(the caller sees a timeout and cannot know the outcome); any other token is ``invalid_token``.

Its books live in the ``sandbox_ledger`` table so every process (API, workers) sees one ledger,
and tests can count charges. Like a real gateway it honours idempotency keys: a request with a
key it has seen answers what the first one did, without a second charge. It serves a hosted
checkout page (``api/resources/sandbox.py``) and sends Stripe-shaped, HMAC-signed webhooks back
to the service. ``pause_seconds`` makes every charge sleep *after* it was recorded and before it
answers, so tests can kill a worker while it waits for the gateway.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from models import Database, SandboxLedgerEntry
from models.types import utcnow
from services.kernel.money import to_money
from services.payments.gateways import signing
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
)
from services.payments.gateways.events import normalize, parse_event
from services.payments.gateways.sandbox.books import (
    DECLINES,
    FLAKY_TOKEN,
    SIGNATURE_HEADER,
    SUCCESS_TOKENS,
    TIMEOUT_TOKEN,
    UNAVAILABLE_TOKEN,
    SandboxBooks,
)
from services.payments.gateways.sandbox.hosted import HostedCheckout
from services.payments.gateways.sandbox.sender import Deliver, WebhookSender, http_deliver

log = logging.getLogger(__name__)


class SandboxGateway(HostedCheckout, WebhookSender, SandboxBooks):
    signature_header = SIGNATURE_HEADER

    def __init__(
        self,
        gateway_id: str,
        db: Database,
        *,
        webhook_secret: str,
        base_url: str,
        pause_seconds: float = 0.0,
        tolerance_seconds: int = 300,
        deliver: Deliver | None = None,
    ) -> None:
        self.gateway_id = gateway_id
        self.db = db
        self.webhook_secret = webhook_secret
        self.base_url = base_url.rstrip("/")
        self.pause_seconds = pause_seconds
        self.tolerance_seconds = tolerance_seconds
        self.deliver = deliver or http_deliver

    # -- the books -----------------------------------------------------------------------------

    # -- the gateway interface -----------------------------------------------------------------
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
        return self._charge(amount, currency, token, capture, idempotency_key, metadata)

    def _charge(
        self,
        amount: Decimal,
        currency: str,
        token: str,
        capture: bool,
        idempotency_key: str,
        metadata: dict[str, str],
        before: Callable[[Any, SandboxLedgerEntry], None] | None = None,
    ) -> ChargeResult:
        """A charge; ``before(session, entry)`` runs in the transaction that books it (and may refuse it)."""
        if token == TIMEOUT_TOKEN:
            raise GatewayTimeout("sandbox: tok_timeout never answers")
        if token == UNAVAILABLE_TOKEN:
            raise GatewayUnavailable("sandbox: temporarily unavailable")
        if token == FLAKY_TOKEN:
            self._fail_while_flaky(amount, currency, idempotency_key)
        reason = DECLINES.get(token) or (None if token in SUCCESS_TOKENS + (FLAKY_TOKEN,) else "invalid_token")
        status = "declined" if reason else ("succeeded" if capture else "authorized")
        entry = self._entry(
            "charge",
            status,
            amount,
            currency,
            idempotency_key,
            token=token,
            reference=metadata.get("orderId"),
            decline_reason=reason,
        )
        entry = self._record(entry, before=(lambda session: before(session, entry)) if before else None)
        if entry.status != "declined" and self.pause_seconds > 0:
            log.warning("sandbox: pausing inside charge %s for %ss", entry.id, self.pause_seconds)
            time.sleep(self.pause_seconds)
        return self._answer(entry)

    def capture(self, transaction_id: str, *, amount: Decimal, idempotency_key: str) -> ChargeResult:
        known = self._replay(idempotency_key)
        if known is not None:
            return ChargeResult(transaction_id, "succeeded", known.amount)
        parent = self._parent(transaction_id)
        if parent.status != "authorized":
            raise GatewayDeclined("payment_not_capturable", transaction_id=transaction_id)
        if to_money(amount) > parent.amount:
            raise GatewayDeclined("amount_too_large", transaction_id=transaction_id)

        def mark(session: Any) -> None:
            row = session.get(SandboxLedgerEntry, transaction_id, with_for_update=True)
            row.status, row.updated_at = "succeeded", utcnow()
            row.amount = to_money(amount)

        self._record(
            self._entry("capture", "succeeded", amount, parent.currency, idempotency_key, parent_id=parent.id),
            before=mark,
        )
        return ChargeResult(transaction_id, "succeeded", to_money(amount))

    def void(self, transaction_id: str, *, idempotency_key: str) -> None:
        if self._replay(idempotency_key) is not None:
            return
        parent = self._parent(transaction_id)
        if parent.status != "authorized":
            raise GatewayDeclined("payment_not_voidable", transaction_id=transaction_id)

        def mark(session: Any) -> None:
            row = session.get(SandboxLedgerEntry, transaction_id, with_for_update=True)
            row.status, row.updated_at = "voided", utcnow()

        self._record(
            self._entry("void", "succeeded", parent.amount, parent.currency, idempotency_key, parent_id=parent.id),
            before=mark,
        )

    def refund(self, transaction_id: str, *, amount: Decimal, idempotency_key: str) -> RefundResult:
        known = self._replay(idempotency_key)
        if known is not None:
            return RefundResult(known.id, known.amount)
        parent = self._parent(transaction_id)
        if parent.status != "succeeded":
            raise GatewayDeclined("charge_not_refundable", transaction_id=transaction_id)
        with self.db.reader() as session:
            refunded = session.scalar(
                select(func.coalesce(func.sum(SandboxLedgerEntry.amount), 0)).where(
                    SandboxLedgerEntry.parent_id == transaction_id, SandboxLedgerEntry.kind == "refund"
                )
            )
        if to_money(amount) > parent.amount - to_money(Decimal(str(refunded))):
            raise GatewayDeclined("amount_too_large", transaction_id=transaction_id)
        entry = self._record(
            self._entry("refund", "succeeded", amount, parent.currency, idempotency_key, parent_id=parent.id)
        )
        return RefundResult(entry.id, entry.amount)

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
        entry = self._entry("checkout_session", "open", amount, currency, idempotency_key, reference=order_id)
        entry.data = {
            "success_url": success_url,
            "cancel_url": cancel_url,
            "expires_at": int(expires_at.timestamp()),
            # The page's own secret: knowing a session id (it travels in webhooks and return URLs)
            # is not enough to open its page or press Pay or Decline on someone else's checkout.
            "key": secrets.token_urlsafe(18),
        }
        entry = self._record(entry)
        return CheckoutSession(entry.id, f"{self.base_url}{self.page_path(entry.id, entry.data['key'])}")

    def retrieve_checkout_session(self, session_id: str) -> CheckoutState:
        entry = self._session(session_id)
        if entry is None:
            raise GatewayDeclined("no_such_checkout_session")
        status = entry.status
        if status == "open" and entry.data.get("expires_at", 0) < time.time():
            status = "expired"
        return CheckoutState(
            id=entry.id,
            paid=status == "complete",
            status=status,
            transaction_id=entry.data.get("payment_intent"),
            amount=entry.amount,
            order_id=entry.reference,
            currency=entry.currency,
        )

    def settlement_entries(self, start: datetime, end: datetime) -> list[LedgerEntry]:
        """The books' captures (charges that ended ``succeeded``, dated when captured) and refunds."""
        book = SandboxLedgerEntry
        with self.db.reader() as session:
            captures = session.scalars(
                select(book).where(
                    book.gateway_id == self.gateway_id,
                    book.kind == "charge",
                    book.status == "succeeded",
                    book.updated_at >= start,
                    book.updated_at < end,
                )
            ).all()
            refunds = session.scalars(
                select(book).where(
                    book.gateway_id == self.gateway_id,
                    book.kind == "refund",
                    book.status == "succeeded",
                    book.created_at >= start,
                    book.created_at < end,
                )
            ).all()
        return [LedgerEntry(e.id, "capture", e.amount, e.currency, e.updated_at) for e in captures] + [
            LedgerEntry(e.id, "refund", e.amount, e.currency, e.created_at) for e in refunds
        ]

    def parse_webhook(self, payload: bytes, signature: str | None) -> GatewayEvent:
        signing.verify(payload, signature, self.webhook_secret, self.tolerance_seconds)
        return normalize(parse_event(payload))

    def expire_checkout(self, session_id: str) -> CheckoutState:
        """Close an open session (its Pay button stops working); a paid one stays ``complete``."""
        with self.db.transaction() as session:
            row = session.get(SandboxLedgerEntry, session_id, with_for_update=True)
            if row is None or row.kind != "checkout_session" or row.gateway_id != self.gateway_id:
                raise GatewayDeclined("no_such_checkout_session")
            if row.status == "open":
                row.status, row.updated_at = "expired", utcnow()
        return self.retrieve_checkout_session(session_id)
