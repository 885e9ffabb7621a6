"""Hosted checkouts whose outcome never reached us: ask the gateway, settle to what it says.

A checkout payment stays ``pending`` until the gateway's webhook (or the customer's return to the
shop) confirms it. When both are lost, the reconciliation beat job finds it after the grace period
(``reconcile_after_seconds`` since it last changed) and retrieves the session at the gateway:

- paid → the payment is confirmed exactly as the webhook would have done (the order becomes
  ``processing``; on an order cancelled meanwhile the capture is refunded);
- expired → the payment is closed as expired (the unpaid-orders job cancels the order);
- still open → it is asked again one grace period later; if its order is no longer awaiting
  payment (cancelled, or paid another way) the session is expired at the gateway first.

Direct charges whose outcome is unknown are retried through their own payment task
(:func:`services.payments.stale_pending_payments`, same idempotency key).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select

from models import Database, Job, Order, Payment
from models.types import utcnow
from services.jobs.kinds import PAYMENT
from services.jobs.outbox import JobRef, add_job
from services.jobs.states import FINISHED
from services.kernel import lifecycle
from services.kernel.principal import SYSTEM
from services.ledger.book import CHECKOUT, FAILED, MAX_RECONCILE_ATTEMPTS, PENDING
from services.payments.confirmation import confirm_payment
from services.payments.gateways.base import CheckoutState, GatewayDeclined, GatewayTimeout, GatewayUnavailable
from services.payments.gateways.registry import Gateways

log = logging.getLogger(__name__)


@dataclass
class CheckoutRun:
    confirmed: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    still_open: list[str] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)
    jobs: list[JobRef] = field(default_factory=list)  # refunds and closings, sent by the caller

    def as_dict(self) -> dict[str, int]:
        return {
            "confirmed": len(self.confirmed),
            "expired": len(self.expired),
            "open": len(self.still_open),
            "unanswered": len(self.unanswered),
        }


@dataclass(frozen=True)
class _Stale:
    payment_id: str
    order_id: str
    gateway_id: str
    session_id: str
    order_status: str


def _stale(db: Database, older_than: timedelta, limit: int) -> list[_Stale]:
    cutoff = utcnow() - older_than
    with db.reader() as session:
        rows = session.execute(
            select(Payment.id, Payment.order_id, Payment.gateway_id, Payment.checkout_session_id, Order.status)
            .join(Order, Order.id == Payment.order_id)
            .where(
                Payment.state == PENDING,
                Payment.action == CHECKOUT,
                Payment.checkout_session_id.is_not(None),
                Payment.updated_at < cutoff,
            )
            .order_by(Payment.updated_at)
            .limit(limit)
        ).all()
    return [_Stale(*row) for row in rows]


def _ask(gateways: Gateways, stale: _Stale) -> CheckoutState | None:
    gateway = gateways.get(stale.gateway_id)
    state = gateway.retrieve_checkout_session(stale.session_id)
    if state.status == "open" and stale.order_status != lifecycle.PENDING_PAYMENT:
        state = gateway.expire_checkout(stale.session_id)  # nothing left to pay for: close it
    return state


def _settle(db: Database, stale: _Stale, state: CheckoutState | None, run: CheckoutRun) -> None:
    """Apply the gateway's answer (``None``: it does not know the session) in one transaction."""
    now = utcnow()
    with db.transaction() as session:
        payment = session.get(Payment, stale.payment_id, with_for_update=True)
        order = session.get(Order, stale.order_id, with_for_update=True)
        if payment is None or order is None or payment.state != PENDING:
            return  # settled by a webhook or the customer's return meanwhile
        if state is not None and state.paid and (state.amount != payment.amount or state.order_id != order.id):
            # Money moved at the gateway that is not what this order owes: a person must look.
            payment.state = FAILED
            payment.error = {
                "code": "AMOUNT_MISMATCH",
                "message": f"The gateway reports {state.amount} paid for order {state.order_id}.",
            }
            payment.updated_at = now
            run.expired.append(payment.id)
        elif state is not None and state.paid:
            run.jobs += confirm_payment(
                session,
                order,
                payment,
                transaction_id=state.transaction_id,
                actor=f"gateway:{stale.gateway_id}",
                reason="payment confirmed by reconciliation with the gateway",
            )
            run.confirmed.append(payment.id)
        elif state is None or state.status == "expired":
            payment.state = FAILED
            payment.error = {
                "code": "CHECKOUT_EXPIRED" if state is not None else "CHECKOUT_UNKNOWN",
                "message": "The checkout session closed unpaid." if state else "The gateway does not know it.",
            }
            payment.updated_at = now
            run.expired.append(payment.id)
        else:
            payment.attempts += 1
            payment.updated_at = now  # asked again one grace period from now
            run.still_open.append(payment.id)


def reconcile_checkouts(db: Database, gateways: Gateways, older_than: timedelta, *, limit: int = 100) -> CheckoutRun:
    """Settle up to ``limit`` checkout payments left ``pending`` longer than ``older_than``."""
    run = CheckoutRun()
    for stale in _stale(db, older_than, limit):
        try:
            state = _ask(gateways, stale)
        except GatewayDeclined:
            state = None
        except (GatewayUnavailable, GatewayTimeout) as exc:
            log.warning("checkout %s: gateway did not answer: %r", stale.session_id, exc)
            run.unanswered.append(stale.payment_id)
            continue
        _settle(db, stale, state, run)
    return run


# -- direct charges whose outcome is unknown --------------------------------------------------


def stale_pending_payments(db: Database, older_than: timedelta, limit: int = 100) -> list[JobRef]:
    """Queue another attempt for payments whose outcome is still unknown after ``older_than``.

    The attempt reuses the payment's idempotency key, so asking again can never charge twice.
    """
    cutoff = utcnow() - older_than
    with db.transaction() as session:
        rows = session.execute(
            select(Payment, Job.state)
            .outerjoin(Job, Job.id == Payment.job_id)
            .where(
                Payment.state == PENDING,
                Payment.action != CHECKOUT,
                Payment.updated_at < cutoff,
                Payment.attempts < MAX_RECONCILE_ATTEMPTS,
            )
            .limit(limit)
        ).all()
        refs = []
        for payment, job_state in rows:
            if job_state is not None and job_state not in FINISHED:
                continue
            job = add_job(
                session,
                PAYMENT,
                args={"transactionId": payment.id},
                owner=SYSTEM,
                order_id=payment.order_id,
            )
            payment.job_id = job.job_id
            payment.updated_at = utcnow()
            refs.append(job)
        return refs
