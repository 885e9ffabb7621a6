"""Signed gateway webhooks: verify, store once, apply (now, or later when their subject appears).

Every verified event is inserted into ``webhook_events`` under a unique (gateway, event id), in
the same transaction that applies it, so a redelivery finds the row and changes nothing. An event
naming an order or payment that is not visible yet is stored ``pending`` and a job applies it
later (and the checkout step applies waiting events when it records its session).

A valid signature says who sent an event, not that it is right, so an event moves money only if
it matches what we know (:func:`_mismatch`): the payment belongs to the gateway the event came
through and to the order it names, and the amount and currency are exactly what the payment is
for. A completed checkout naming a session we never recorded is looked up at the gateway itself
(outside any transaction) and applied only if the gateway knows it, paid, for this order and its
total. Anything else is stored ``rejected`` with the reason, acknowledged (a retry cannot make it
right) and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import Database, Order, Payment, WebhookEvent
from models.ids import new_id
from models.types import utcnow
from services.events.record import ORDER_PAYMENT_FAILED
from services.jobs.kinds import WEBHOOK
from services.jobs.outbox import JobOutcome, JobRef, add_job
from services.kernel import lifecycle
from services.kernel.errors import ResourceNotFound, ServiceUnavailable, TransientError, WebhookRejected
from services.kernel.money import to_money
from services.kernel.principal import SYSTEM
from services.ledger.book import CHECKOUT, FAILED, PENDING, SUCCEEDED
from services.ledger.events import add_payment_event
from services.payments.confirmation import confirm_payment
from services.payments.gateways.base import (
    CHECKOUT_COMPLETED,
    PAYMENT_FAILED,
    PAYMENT_SUCCEEDED,
    CheckoutState,
    GatewayDeclined,
    GatewayEvent,
    GatewayTimeout,
    GatewayUnavailable,
    WebhookSignatureError,
)
from services.payments.gateways.events import normalize
from services.payments.gateways.registry import Gateways

log = logging.getLogger(__name__)

RECEIVED, APPLIED, IGNORED, WAITING, DUPLICATE = "received", "applied", "ignored", "pending", "duplicate"
REJECTED = "rejected"


@dataclass(frozen=True)
class WebhookOutcome:
    event_id: str
    state: str
    jobs: list[JobRef] = field(default_factory=list)


@dataclass(frozen=True)
class Applied:
    """What applying an event did: its state, the jobs it queued, and why it was rejected."""

    state: str
    jobs: list[JobRef] = field(default_factory=list)
    note: str | None = None


# What the gateway said of a checkout session the event named and we never recorded.
UNKNOWN_SESSION = CheckoutState(id="", paid=False, status="unknown", transaction_id=None, amount=None, order_id=None)


def _recorded_session(db: Database, gateway_id: str, session_id: str) -> bool:
    with db.reader() as session:
        return (
            session.scalar(
                select(Payment.id).where(Payment.gateway_id == gateway_id, Payment.checkout_session_id == session_id)
            )
            is not None
        )


def look_up_session(db: Database, gateways: Gateways, gateway_id: str, event: GatewayEvent) -> CheckoutState | None:
    """For a completed checkout naming a session we never recorded: the gateway's own view of it
    (:data:`UNKNOWN_SESSION` when it does not know it). ``None``: no lookup needed."""
    session_id = event.checkout_session_id
    if event.kind != CHECKOUT_COMPLETED or not session_id or _recorded_session(db, gateway_id, session_id):
        return None
    try:
        return gateways.get(gateway_id).retrieve_checkout_session(session_id)
    except GatewayDeclined:
        return UNKNOWN_SESSION
    except (GatewayUnavailable, GatewayTimeout):
        raise ServiceUnavailable("The payment gateway did not answer; deliver the event again.") from None


def _mismatch(payment: Payment, gateway_id: str, event: GatewayEvent) -> str | None:
    """Why ``event`` cannot be about ``payment`` (None: it can)."""
    if payment.gateway_id != gateway_id:
        return f"payment {payment.id} was not made through gateway {gateway_id}"
    if event.order_id and event.order_id != payment.order_id:
        return f"payment {payment.id} belongs to another order than {event.order_id}"
    if event.kind == PAYMENT_FAILED or payment.action != CHECKOUT:
        return None  # a failure moves no money; a direct attempt is settled by its own task
    return _amount_mismatch(event, payment.amount, payment.currency)


def _amount_mismatch(event: GatewayEvent, amount: Decimal, currency: str) -> str | None:
    if event.amount is None or to_money(event.amount) != amount:
        return f"amount {event.amount} is not the {amount} owed"
    if (event.currency or "") != currency:
        return f"currency {event.currency} is not {currency}"
    return None


def _session_mismatch(order: Order, state: CheckoutState, event: GatewayEvent) -> str | None:
    """Why a session the gateway reports (and we never recorded) cannot pay ``order``."""
    if state is UNKNOWN_SESSION:
        return f"the gateway does not know checkout session {event.checkout_session_id}"
    if state.order_id != order.id:
        return f"checkout session {state.id} belongs to another order"
    if not state.paid:
        return f"checkout session {state.id} is {state.status} at the gateway, not paid"
    if state.amount is None or to_money(state.amount) != order.total_amount:
        return f"checkout session {state.id} is for {state.amount}, not the order's {order.total_amount}"
    if (state.currency or order.currency) != order.currency:
        return f"checkout session {state.id} is in {state.currency}, not {order.currency}"
    return _amount_mismatch(event, order.total_amount, order.currency)


def _find_payment(session: Session, gateway_id: str, event: GatewayEvent) -> Payment | None:
    if event.payment_id:
        payment = session.get(Payment, event.payment_id, with_for_update=True)
        if payment is not None:
            return payment
    if event.checkout_session_id:
        payment = session.scalar(
            select(Payment)
            .where(Payment.gateway_id == gateway_id, Payment.checkout_session_id == event.checkout_session_id)
            .with_for_update()
        )
        if payment is not None:
            return payment
    if event.transaction_id and event.kind != CHECKOUT_COMPLETED:
        return session.scalar(
            select(Payment)
            .where(
                Payment.gateway_id == gateway_id,
                Payment.gateway_transaction_id == event.transaction_id,
                Payment.action != "refund",
            )
            .order_by(Payment.created_at)
            .limit(1)
            .with_for_update()
        )
    return None


def recorded_checkout(session: Session, gateway_id: str, session_id: str) -> Payment | None:
    """The (locked) payment row of a checkout session we opened, if we recorded it."""
    return session.scalar(
        select(Payment)
        .where(Payment.gateway_id == gateway_id, Payment.checkout_session_id == session_id)
        .with_for_update()
    )


def checkout_payment(
    session: Session, order: Order, gateway_id: str, session_id: str, amount: Decimal | None
) -> Payment:
    """The payment row of a hosted checkout session, created when first needed."""
    payment = recorded_checkout(session, gateway_id, session_id)
    if payment is None:
        now = utcnow()
        payment = Payment(
            id=new_id("txn"),
            order_id=order.id,
            gateway_id=gateway_id,
            action=CHECKOUT,
            method=order.payment_method,
            amount=amount if amount is not None else order.total_amount,
            currency=order.currency,
            state=PENDING,
            checkout_session_id=session_id,
            idempotency_key=f"checkout:{order.id}:{session_id}",
            attempts=0,
            created_at=now,
            updated_at=now,
        )
        session.add(payment)
        session.flush()
    return payment


def apply_event(
    session: Session,
    gateway_id: str,
    event: GatewayEvent,
    looked_up: CheckoutState | None = None,
    *,
    request_id: str | None = None,
) -> Applied:
    """Apply a verified event in the caller's transaction; ``pending`` when its subject is not
    visible, ``rejected`` when it does not match (see the module docstring). ``looked_up`` is
    :func:`look_up_session`'s answer, taken before the transaction."""
    if event.kind not in (CHECKOUT_COMPLETED, PAYMENT_SUCCEEDED, PAYMENT_FAILED):
        return Applied(IGNORED)
    payment = _find_payment(session, gateway_id, event)
    if payment is not None and (reason := _mismatch(payment, gateway_id, event)):
        return Applied(REJECTED, note=reason)
    order_id = payment.order_id if payment is not None else event.order_id
    order = session.get(Order, order_id, with_for_update=True) if order_id else None
    if order is None:
        return Applied(WAITING)
    actor = f"gateway:{gateway_id}"
    if event.kind == CHECKOUT_COMPLETED:
        if payment is None:
            if not event.checkout_session_id:
                return Applied(IGNORED)
            if looked_up is None:
                return Applied(WAITING)  # recorded after the lookup was skipped: the retry job looks again
            if reason := _session_mismatch(order, looked_up, event):
                return Applied(REJECTED, note=reason)
            payment = checkout_payment(session, order, gateway_id, event.checkout_session_id, looked_up.amount)
        jobs = confirm_payment(
            session,
            order,
            payment,
            transaction_id=event.transaction_id,
            actor=actor,
            reason="payment confirmed by gateway webhook",
            request_id=request_id,
        )
        return Applied(APPLIED, jobs)
    if event.kind == PAYMENT_SUCCEEDED:
        if payment is None:
            # Names a payment attempt of ours that is not visible yet: wait for it.
            return Applied(WAITING if event.payment_id else IGNORED)
        jobs: list[JobRef] = []
        if payment.action == CHECKOUT or payment.state == SUCCEEDED:
            jobs = confirm_payment(
                session,
                order,
                payment,
                transaction_id=event.transaction_id,
                actor=actor,
                reason="payment confirmed",
                request_id=request_id,
            )
        # A direct attempt still pending is finished by its own task (same idempotency key).
        return Applied(APPLIED, jobs)
    # payment failed
    if payment is not None and payment.action != CHECKOUT and payment.state == PENDING:
        payment.state = FAILED
        payment.error = {"code": "PAYMENT_FAILED", "reason": event.reason or "declined", "message": "declined"}
        payment.updated_at = utcnow()
        add_payment_event(session, order, payment, ORDER_PAYMENT_FAILED)
    if order.status == lifecycle.PENDING_PAYMENT and order.payment_status not in (
        *lifecycle.PAYMENT_CAPTURED_STATUSES,
        lifecycle.PAYMENT_AUTHORIZED,
        lifecycle.PAYMENT_FAILED,
    ):
        order.payment_status = lifecycle.PAYMENT_FAILED
        order.version += 1
        order.updated_at = utcnow()
    return Applied(APPLIED)


def receive_webhook(
    db: Database,
    gateways: Gateways,
    gateway_id: str,
    payload: bytes,
    headers: Mapping[str, str],
    *,
    request_id: str | None = None,
) -> WebhookOutcome:
    """Verify and record one delivery; a redelivery of a known event id changes nothing."""
    if gateway_id not in gateways.ids():
        raise ResourceNotFound("Unknown payment gateway.", details=[{"gatewayId": gateway_id}])
    gateway = gateways.get(gateway_id)
    try:
        event = gateway.parse_webhook(payload, headers.get(gateway.signature_header.lower()))
    except WebhookSignatureError as exc:
        raise WebhookRejected(details=[{"reason": str(exc)}]) from None
    except (ValueError, TypeError) as exc:
        raise WebhookRejected("The webhook payload is not a gateway event.", details=[{"reason": str(exc)}]) from None
    if not event.id:
        raise WebhookRejected("The webhook event has no id.")
    looked_up = look_up_session(db, gateways, gateway_id, event)
    try:
        with db.transaction() as session:
            row = WebhookEvent(
                gateway_id=gateway_id,
                event_id=event.id,
                type=event.type,
                payload=event.raw,
                order_id=(event.order_id or "")[:40] or None,
                checkout_session_id=event.checkout_session_id,
                state=RECEIVED,
                attempts=1,
                received_at=utcnow(),
            )
            session.add(row)
            session.flush()
            applied = _record(row, apply_event(session, gateway_id, event, looked_up, request_id=request_id))
            jobs = list(applied.jobs)
            if row.state == WAITING:
                jobs.append(_retry_job(session, row))
            return WebhookOutcome(event.id, row.state, jobs)
    except IntegrityError:
        with db.reader() as session:
            known = session.scalar(
                select(WebhookEvent.id).where(WebhookEvent.gateway_id == gateway_id, WebhookEvent.event_id == event.id)
            )
        if known is None:
            raise
        return WebhookOutcome(event.id, DUPLICATE)


def _retry_job(session: Session, row: WebhookEvent) -> JobRef:
    return add_job(
        session,
        WEBHOOK,
        args={"webhookEventId": row.id},
        owner=SYSTEM,
        order_id=row.order_id,
    )


def _record(row: WebhookEvent, applied: Applied) -> Applied:
    """Write what applying did onto the stored event (a rejection is logged with its reason)."""
    row.state = applied.state
    row.note = applied.note
    if applied.state != WAITING:
        row.applied_at = utcnow()
    if applied.state == REJECTED:
        log.warning("webhook event %s from %s rejected: %s", row.event_id, row.gateway_id, applied.note)
    return applied


def _apply_stored(
    session: Session, row: WebhookEvent, looked_up: CheckoutState | None = None, *, request_id: str | None
) -> Applied:
    row.attempts += 1
    return _record(row, apply_event(session, row.gateway_id, normalize(row.payload), looked_up, request_id=request_id))


def apply_waiting_event(
    db: Database, gateways: Gateways, args: dict[str, Any], *, request_id: str | None = None
) -> JobOutcome:
    """The retry job of a stored event: apply it, or retry later while its subject is not visible."""
    with db.reader() as session:
        stored = session.get(WebhookEvent, args["webhookEventId"])
        if stored is None:
            raise ResourceNotFound("Unknown webhook event.")
        gateway_id, payload = stored.gateway_id, stored.payload
    looked_up = look_up_session(db, gateways, gateway_id, normalize(payload))
    with db.transaction() as session:
        row = session.get(WebhookEvent, args["webhookEventId"], with_for_update=True)
        assert row is not None
        applied = (
            Applied(row.state)
            if row.state != WAITING
            else _apply_stored(session, row, looked_up, request_id=request_id)
        )
        event_id = row.event_id
    if applied.state == WAITING:
        raise TransientError(f"event {event_id}: the order or payment it names is not visible yet")
    return JobOutcome({"eventId": event_id, "state": applied.state}, send=applied.jobs)


def apply_waiting_for(
    session: Session, *, order_id: str, checkout_session_id: str | None = None, request_id: str | None = None
) -> list[JobRef]:
    """Apply events that waited for this order (or checkout session), in the caller's transaction;
    the jobs they queued, for the caller to send after commit."""
    conditions = [WebhookEvent.order_id == order_id]
    if checkout_session_id:
        conditions.append(WebhookEvent.checkout_session_id == checkout_session_id)
    jobs: list[JobRef] = []
    for condition in conditions:
        for row in session.scalars(select(WebhookEvent).where(condition, WebhookEvent.state == WAITING)):
            jobs += _apply_stored(session, row, request_id=request_id).jobs
    return jobs


def stale_waiting_events(db: Database, older_than: timedelta, limit: int = 100) -> list[JobRef]:
    """New retry jobs for events still waiting after their first job gave up."""
    cutoff = utcnow() - older_than
    with db.transaction() as session:
        rows = session.scalars(
            select(WebhookEvent)
            .where(WebhookEvent.state == WAITING, WebhookEvent.received_at < cutoff, WebhookEvent.attempts < 50)
            .limit(limit)
        ).all()
        return [_retry_job(session, row) for row in rows]
