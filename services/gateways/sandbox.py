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

import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import requests
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from models import Database, SandboxLedgerEntry
from models.ids import new_id
from models.types import utcnow
from services.gateways import signing
from services.gateways.base import (
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
from services.gateways.events import normalize, parse_event, to_minor
from services.money import to_money

log = logging.getLogger(__name__)

DECLINES = {"tok_chargeDeclined": "card_declined", "tok_insufficientFunds": "insufficient_funds"}
SUCCESS_TOKENS = ("tok_visa", "tok_mastercard")
TIMEOUT_TOKEN = "tok_timeout"
UNAVAILABLE_TOKEN = "tok_gatewayUnavailable"
# Unavailable for the first FLAKY_FAILURES calls of a payment attempt, then succeeds like tok_visa:
# shows that transient gateway errors are retried (with backoff) and still charge once.
FLAKY_TOKEN = "tok_gatewayFlaky"
FLAKY_FAILURES = 2
SIGNATURE_HEADER = "Sandbox-Signature"

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


def session_owner(db: Database, session_id: str) -> str | None:
    """The gateway id of the sandbox checkout session ``session_id``."""
    with db.reader() as session:
        return session.scalar(
            select(SandboxLedgerEntry.gateway_id).where(
                SandboxLedgerEntry.id == session_id, SandboxLedgerEntry.kind == "checkout_session"
            )
        )


@dataclass(frozen=True)
class HostedPage:
    """What the hosted checkout page shows."""

    session_id: str
    order_id: str | None
    amount: Decimal
    currency: str
    status: str
    success_url: str
    cancel_url: str


class SandboxGateway:
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
    def _replay(self, idempotency_key: str) -> SandboxLedgerEntry | None:
        with self.db.reader() as session:
            return session.scalar(
                select(SandboxLedgerEntry).where(SandboxLedgerEntry.idempotency_key == idempotency_key)
            )

    def _fail_while_flaky(self, amount: Decimal, currency: str, idempotency_key: str) -> None:
        """Record an outage for this attempt and raise, until it has failed FLAKY_FAILURES times."""
        with self.db.reader() as session:
            failures = session.scalar(
                select(func.count())
                .select_from(SandboxLedgerEntry)
                .where(SandboxLedgerEntry.idempotency_key.startswith(f"{idempotency_key}:outage:", autoescape=True))
            )
        if failures < FLAKY_FAILURES:
            self._record(self._entry("outage", "unavailable", amount, currency, f"{idempotency_key}:outage:{failures}"))
            raise GatewayUnavailable(f"sandbox: flaky outage {failures + 1} of {FLAKY_FAILURES}")

    def _record(self, entry: SandboxLedgerEntry, before: Callable[[Any], None] | None = None) -> SandboxLedgerEntry:
        """Insert ``entry`` unless its idempotency key is known; returns the entry of record."""
        try:
            with self.db.transaction() as session:
                existing = session.scalar(
                    select(SandboxLedgerEntry).where(SandboxLedgerEntry.idempotency_key == entry.idempotency_key)
                )
                if existing is not None:
                    return existing
                if before is not None:
                    before(session)
                session.add(entry)
                return entry
        except IntegrityError:
            existing = self._replay(entry.idempotency_key or "")
            if existing is None:
                raise
            return existing

    @staticmethod
    def _answer(entry: SandboxLedgerEntry) -> ChargeResult:
        if entry.status == "declined":
            raise GatewayDeclined(entry.decline_reason or "card_declined", transaction_id=entry.id)
        return ChargeResult(entry.id, "authorized" if entry.status == "authorized" else "succeeded", entry.amount)

    def _entry(
        self, kind: str, status: str, amount: Decimal, currency: str, key: str, **extra: Any
    ) -> SandboxLedgerEntry:
        now = utcnow()
        prefix = {"charge": "pi_sbx", "refund": "re_sbx", "checkout_session": "cs_sbx"}.get(kind, "sbx")
        return SandboxLedgerEntry(
            id=new_id(prefix),
            gateway_id=self.gateway_id,
            kind=kind,
            status=status,
            idempotency_key=key,
            amount=to_money(amount),
            currency=currency,
            created_at=now,
            updated_at=now,
            data={},
            **extra,
        )

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

    def _parent(self, transaction_id: str) -> SandboxLedgerEntry:
        with self.db.reader() as session:
            parent = session.get(SandboxLedgerEntry, transaction_id)
        if parent is None or parent.kind != "charge":
            raise GatewayDeclined("no_such_payment", transaction_id=transaction_id)
        return parent

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

    @staticmethod
    def page_path(session_id: str, key: str) -> str:
        return f"/sandbox/checkout/{key}/{session_id}"

    def opens_with(self, session_id: str, key: str) -> bool:
        """Whether ``key`` is the page secret of this gateway's session ``session_id``."""
        entry = self._session(session_id)
        expected = str(entry.data.get("key", "")) if entry is not None else ""
        return bool(expected) and hmac.compare_digest(expected.encode(), key.encode("utf-8", "replace"))

    def _session(self, session_id: str) -> SandboxLedgerEntry | None:
        """One of *this* gateway's sessions (a gateway knows nothing of another's)."""
        with self.db.reader() as session:
            entry = session.get(SandboxLedgerEntry, session_id)
        if entry is None or entry.kind != "checkout_session" or entry.gateway_id != self.gateway_id:
            return None
        return entry

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

    # -- the hosted page (sandbox only) --------------------------------------------------------
    def hosted_page(self, session_id: str) -> HostedPage | None:
        entry = self._session(session_id)
        if entry is None:
            return None
        state = self.retrieve_checkout_session(session_id)
        return HostedPage(
            session_id=entry.id,
            order_id=entry.reference,
            amount=entry.amount,
            currency=entry.currency,
            status=state.status,
            success_url=entry.data["success_url"],
            cancel_url=entry.data["cancel_url"],
        )

    def pay_hosted(self, session_id: str, token: str = "tok_visa") -> str:
        """The customer pressed Pay: charge, complete the session, send the webhook; where to go.

        The charge is booked and the session completed in one transaction that holds the session's
        row lock, the same lock :meth:`expire_checkout` takes: a session is either paid or expired,
        never both, however the two interleave.
        """
        page = self.hosted_page(session_id)
        if page is None:
            raise GatewayDeclined("no_such_checkout_session")
        if page.status not in ("open", "complete"):
            raise GatewayDeclined(f"checkout_session_{page.status}")
        metadata = {"orderId": page.order_id or "", "checkoutSessionId": session_id}

        def complete(session: Any, entry: SandboxLedgerEntry) -> None:
            row = session.get(SandboxLedgerEntry, session_id, with_for_update=True)
            if row.status == "complete":
                raise GatewayDeclined("checkout_session_complete")  # paid already: no second charge
            if row.status != "open" or row.data.get("expires_at", 0) < time.time():
                raise GatewayDeclined("checkout_session_expired")
            if entry.status != "declined":
                row.status = "complete"
                row.data = {**row.data, "payment_intent": entry.id}
                row.updated_at = utcnow()

        try:
            charge = self._charge(
                # keyed by token too: a declined card does not make the next card replay the decline
                page.amount,
                page.currency,
                token,
                True,
                f"{session_id}:pay:{token}",
                metadata,
                before=complete,
            )
        except GatewayDeclined as declined:
            if declined.transaction_id is not None:  # a declined card (not a closed session)
                self.send_event(self._intent_failed_event(session_id, page, declined))
            raise
        self.send_event(self._completed_event(session_id, page, charge.transaction_id))
        return page.success_url.replace("{CHECKOUT_SESSION_ID}", session_id)

    def expire_checkout(self, session_id: str) -> CheckoutState:
        """Close an open session (its Pay button stops working); a paid one stays ``complete``."""
        with self.db.transaction() as session:
            row = session.get(SandboxLedgerEntry, session_id, with_for_update=True)
            if row is None or row.kind != "checkout_session" or row.gateway_id != self.gateway_id:
                raise GatewayDeclined("no_such_checkout_session")
            if row.status == "open":
                row.status, row.updated_at = "expired", utcnow()
        return self.retrieve_checkout_session(session_id)

    def decline_hosted(self, session_id: str) -> str:
        """The customer pressed Decline: a declined attempt and its webhook; the session stays open."""
        page = self.hosted_page(session_id)
        if page is None:
            raise GatewayDeclined("no_such_checkout_session")
        try:
            self.pay_hosted(session_id, token="tok_chargeDeclined")
        except GatewayDeclined:
            pass
        return page.cancel_url

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
