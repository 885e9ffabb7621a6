"""Unpaid orders: ``pending_payment`` orders past their payment window are cancelled.

The window is the ``holdExpiresAt`` the create response promised (and the checkout session's
expiry). For each order past it, in bounded batches:

1. its open checkout sessions are expired at the gateway first (outside any transaction), so the
   customer can no longer pay through them. A session the gateway reports as paid instead (the
   customer paid just before it closed, and its webhook has not arrived) confirms the order: it
   becomes ``processing``, not cancelled;
2. then, in one transaction per order, the order row is locked and read again; if it is still
   ``pending_payment`` and past its window it becomes ``cancelled`` with reason
   ``payment_timeout`` through :func:`services.transitions.transition_order` (stock released,
   history row, version guard). Its checkout payment rows are closed as expired.

An order whose direct charge is still in flight is not cancelled yet: a ``process`` or
``authorize`` payment that reached the gateway (``attempts`` ≥ 1) and is still ``pending`` may
have charged the customer (its worker was killed inside the gateway call, or the gateway timed
out). Its job comes back within the lease (``services/jobs/leases.py``) and reconciliation asks
again under the same idempotency key, so the order ends ``processing`` once the charge is known,
instead of ``cancelled``/``unpaid`` while the gateway holds the money. After
``MAX_RECONCILE_ATTEMPTS`` the charge needs a person and the order is cancelled as usual.

A payment that lands after the cancellation (a webhook already on its way, a direct charge whose
outcome was unknown) is confirmed against a cancelled order, which refunds it
(:func:`services.payments.confirm_payment`): the order ends ``processing`` or ``cancelled`` and
refunded, never in between. A gateway that does not answer leaves the order for the next run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, exists, select

from models import Database, Order, Payment
from models.types import utcnow
from services.changes.transitions import lock_order, transition_order
from services.jobs.outbox import JobRef
from services.kernel import lifecycle
from services.kernel.errors import ConcurrentUpdate
from services.kernel.principal import SYSTEM
from services.ledger.book import AUTHORIZE, CHECKOUT, FAILED, MAX_RECONCILE_ATTEMPTS, PENDING, PROCESS
from services.payments.confirmation import confirm_payment
from services.payments.gateways.base import CheckoutState, GatewayDeclined, GatewayTimeout, GatewayUnavailable
from services.payments.gateways.registry import Gateways

log = logging.getLogger(__name__)

PAYMENT_TIMEOUT = "payment_timeout"
ACTOR = "system:payment_timeout"


@dataclass
class ExpiryRun:
    cancelled: list[str] = field(default_factory=list)
    paid: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)  # the gateway did not answer: next run
    jobs: list[JobRef] = field(default_factory=list)  # sent by the caller after commit

    def as_dict(self) -> dict[str, int]:
        return {"cancelled": len(self.cancelled), "paid": len(self.paid), "deferred": len(self.deferred)}


@dataclass(frozen=True)
class _Candidate:
    order_id: str
    gateway_id: str
    sessions: tuple[str, ...]


def _charge_in_flight(order_id: ColumnElement[str] | str) -> ColumnElement[bool]:
    """A direct charge of the order that may have reached the gateway and is not settled yet."""
    return exists(
        select(Payment.id).where(
            Payment.order_id == order_id,
            Payment.action.in_((PROCESS, AUTHORIZE)),
            Payment.state == PENDING,
            Payment.attempts > 0,
            Payment.attempts < MAX_RECONCILE_ATTEMPTS,
        )
    )


def _candidates(db: Database, now: datetime, batch: int) -> list[_Candidate]:
    with db.reader() as session:
        orders = session.execute(
            select(Order.id, Order.payment_gateway_id)
            .where(
                Order.status == lifecycle.PENDING_PAYMENT,
                Order.hold_expires_at < now,
                ~_charge_in_flight(Order.id),
            )
            .order_by(Order.hold_expires_at)
            .limit(batch)
        ).all()
        if not orders:
            return []
        sessions: dict[str, list[str]] = {}
        for order_id, session_id in session.execute(
            select(Payment.order_id, Payment.checkout_session_id).where(
                Payment.order_id.in_([row.id for row in orders]),
                Payment.action == CHECKOUT,
                Payment.state == PENDING,
                Payment.checkout_session_id.is_not(None),
            )
        ):
            sessions.setdefault(order_id, []).append(session_id)
    return [_Candidate(row.id, row.payment_gateway_id, tuple(sessions.get(row.id, ()))) for row in orders]


def _expire_sessions(gateways: Gateways, candidate: _Candidate) -> list[CheckoutState] | None:
    """Expire the order's open sessions; ``None`` when the gateway did not answer."""
    states = []
    gateway = gateways.get(candidate.gateway_id)
    for session_id in candidate.sessions:
        try:
            states.append(gateway.expire_checkout(session_id))
        except GatewayDeclined as exc:  # unknown to the gateway: nothing there to pay
            log.warning("checkout session %s not expired: %s", session_id, exc.reason)
        except (GatewayUnavailable, GatewayTimeout) as exc:
            log.warning("checkout session %s not expired, retrying next run: %r", session_id, exc)
            return None
    return states


def _settle_one(
    db: Database, candidate: _Candidate, states: list[CheckoutState], now: datetime, run: ExpiryRun
) -> None:
    """One order, one transaction: confirm it if a session was paid, else cancel it."""
    with db.transaction() as session:
        # Payment rows before the order row: the order in which webhooks and payment tasks lock them.
        checkouts = {
            p.checkout_session_id: p
            for p in session.scalars(
                select(Payment)
                .where(Payment.order_id == candidate.order_id, Payment.action == CHECKOUT)
                .order_by(Payment.id)
                .with_for_update()
            )
        }
        order = lock_order(session, candidate.order_id)
        if order is None or order.status != lifecycle.PENDING_PAYMENT or order.hold_expires_at >= now:
            return  # paid, cancelled or changed since it was read: nothing to do
        if session.scalar(select(_charge_in_flight(candidate.order_id))):
            run.deferred.append(order.id)  # a charge reached the gateway since: settle it first
            return
        paid = next((state for state in states if state.paid), None)
        if paid is not None and paid.id in checkouts:
            run.jobs += confirm_payment(
                session,
                order,
                checkouts[paid.id],
                transaction_id=paid.transaction_id,
                actor=f"gateway:{candidate.gateway_id}",
                reason="payment confirmed when its checkout was closed",
            )
            run.paid.append(order.id)
            return
        # Closed before the transition, which would otherwise queue a job to close them again.
        for payment in checkouts.values():
            if payment.state == PENDING:
                payment.state = FAILED
                payment.error = {"code": "CHECKOUT_EXPIRED", "message": "The payment window closed unpaid."}
                payment.updated_at = now
        change = transition_order(
            session, order, lifecycle.CANCELLED, reason=PAYMENT_TIMEOUT, principal=SYSTEM, actor=ACTOR, request_id=None
        )
        run.cancelled.append(order.id)
        run.jobs.extend(change.jobs)


def expire_unpaid_orders(
    db: Database, gateways: Gateways, *, batch: int = 200, now: datetime | None = None
) -> ExpiryRun:
    """Cancel up to ``batch`` orders past their payment window (see the module docstring)."""
    now = now or utcnow()
    run = ExpiryRun()
    for candidate in _candidates(db, now, batch):
        states = _expire_sessions(gateways, candidate)
        if states is None:
            run.deferred.append(candidate.order_id)
            continue
        try:
            _settle_one(db, candidate, states, now, run)
        except ConcurrentUpdate:  # changed under the lock's second line of defence: next run
            run.deferred.append(candidate.order_id)
    return run
