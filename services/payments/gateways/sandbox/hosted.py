"""The sandbox's hosted checkout page: what it shows, and the customer pressing Pay or Decline.

It stands for the gateway's own site (Stripe Checkout); ``api/resources/sandbox.py`` renders it.
A page opens only with the session's own secret (:meth:`HostedCheckout.opens_with`).
"""

from __future__ import annotations

import hmac
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from models import SandboxLedgerEntry
from models.types import utcnow
from services.payments.gateways.base import (
    GatewayDeclined,
)

log = logging.getLogger(__name__)


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


class HostedCheckout:
    """The hosted page's side of :class:`SandboxGateway` (it books through the gateway's charge)."""

    @staticmethod
    def page_path(session_id: str, key: str) -> str:
        return f"/sandbox/checkout/{key}/{session_id}"

    def opens_with(self, session_id: str, key: str) -> bool:
        """Whether ``key`` is the page secret of this gateway's session ``session_id``."""
        entry = self._session(session_id)
        expected = str(entry.data.get("key", "")) if entry is not None else ""
        return bool(expected) and hmac.compare_digest(expected.encode(), key.encode("utf-8", "replace"))

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
