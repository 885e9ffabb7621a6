"""The sandbox gateway's books: the ``sandbox_ledger`` table, shared by every process.

Like a real gateway it honours idempotency keys: an entry whose key it has seen answers what the
first one did, without a second booking. The other sandbox modules build on this base.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from models import Database, SandboxLedgerEntry
from models.ids import new_id
from models.statements import insert_unless_exists
from models.types import utcnow
from services.kernel.money import to_money
from services.payments.gateways.base import (
    ChargeResult,
    GatewayDeclined,
    GatewayUnavailable,
)

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


def session_owner(db: Database, session_id: str) -> str | None:
    """The gateway id of the sandbox checkout session ``session_id``."""
    with db.reader() as session:
        return session.scalar(
            select(SandboxLedgerEntry.gateway_id).where(
                SandboxLedgerEntry.id == session_id, SandboxLedgerEntry.kind == "checkout_session"
            )
        )


class SandboxBooks:
    """Booking entries in the sandbox's ledger (the base of :class:`SandboxGateway`)."""

    gateway_id: str
    db: Database

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
        if before is None:  # one statement: insert, or find the entry the key already booked
            values = {column.key: getattr(entry, column.key) for column in SandboxLedgerEntry.__table__.columns}
            with self.db.autocommit() as conn:
                table = SandboxLedgerEntry.__table__
                statement = insert_unless_exists(table, ["idempotency_key"], conn.dialect.name)
                # RETURNING, not rowcount: psycopg reports -1 for an INSERT … ON CONFLICT through SQLAlchemy.
                if conn.execute(statement.returning(table.c.id), values).first() is not None:
                    return entry
            existing = self._replay(entry.idempotency_key or "")
            assert existing is not None
            return existing
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

    def _parent(self, transaction_id: str) -> SandboxLedgerEntry:
        with self.db.reader() as session:
            parent = session.get(SandboxLedgerEntry, transaction_id)
        if parent is None or parent.kind != "charge":
            raise GatewayDeclined("no_such_payment", transaction_id=transaction_id)
        return parent

    def _session(self, session_id: str) -> SandboxLedgerEntry | None:
        """One of *this* gateway's sessions (a gateway knows nothing of another's)."""
        with self.db.reader() as session:
            entry = session.get(SandboxLedgerEntry, session_id)
        if entry is None or entry.kind != "checkout_session" or entry.gateway_id != self.gateway_id:
            return None
        return entry
