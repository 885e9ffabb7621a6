"""Signed gateway webhooks: verify, store once, apply (now, or later when their subject appears).

Every verified event is inserted into ``webhook_events`` under a unique (gateway, event id), in
the same transaction that applies it, so a redelivery finds the row and changes nothing. An event
naming an order or payment that is not visible yet is stored ``pending`` and a job applies it
later (and the checkout step applies waiting events when it records its session).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import Database, Order, Payment, WebhookEvent
from models.ids import new_id
from models.types import utcnow
from services import lifecycle
from services.errors import ResourceNotFound, TransientError, WebhookRejected
from services.gateways import Gateways
from services.gateways.base import (
    CHECKOUT_COMPLETED,
    PAYMENT_FAILED,
    PAYMENT_SUCCEEDED,
    GatewayEvent,
    WebhookSignatureError,
)
from services.gateways.events import normalize
from services.jobs import JobRef, add_job
from services.payments import CHECKOUT, FAILED, PAYMENTS_QUEUE, PENDING, SUCCEEDED, confirm_payment
from services.principal import SYSTEM

WEBHOOK_TASK = "payments.apply_webhook_event"
RECEIVED, APPLIED, IGNORED, WAITING, DUPLICATE = "received", "applied", "ignored", "pending", "duplicate"


@dataclass(frozen=True)
class WebhookOutcome:
    event_id: str
    state: str
    job: JobRef | None = None


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


def checkout_payment(
    session: Session, order: Order, gateway_id: str, session_id: str, amount: Decimal | None
) -> Payment:
    """The payment row of a hosted checkout session, created when first needed."""
    payment = session.scalar(
        select(Payment)
        .where(Payment.gateway_id == gateway_id, Payment.checkout_session_id == session_id)
        .with_for_update()
    )
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


def apply_event(session: Session, gateway_id: str, event: GatewayEvent) -> str:
    """Apply a verified event in the caller's transaction; ``pending`` when its subject is not visible."""
    if event.kind not in (CHECKOUT_COMPLETED, PAYMENT_SUCCEEDED, PAYMENT_FAILED):
        return IGNORED
    payment = _find_payment(session, gateway_id, event)
    order_id = payment.order_id if payment is not None else event.order_id
    order = session.get(Order, order_id, with_for_update=True) if order_id else None
    if order is None:
        return WAITING
    actor = f"gateway:{gateway_id}"
    if event.kind == CHECKOUT_COMPLETED:
        if payment is None and event.checkout_session_id:
            payment = checkout_payment(session, order, gateway_id, event.checkout_session_id, event.amount)
        if payment is None:
            return IGNORED
        confirm_payment(
            session,
            order,
            payment,
            transaction_id=event.transaction_id,
            actor=actor,
            reason="payment confirmed by gateway webhook",
        )
        return APPLIED
    if event.kind == PAYMENT_SUCCEEDED:
        if payment is None:
            # Names a payment attempt of ours that is not visible yet: wait for it.
            return WAITING if event.payment_id else IGNORED
        if payment.action == CHECKOUT or payment.state == SUCCEEDED:
            confirm_payment(
                session, order, payment, transaction_id=event.transaction_id, actor=actor, reason="payment confirmed"
            )
        # A direct attempt still pending is finished by its own task (same idempotency key).
        return APPLIED
    # payment failed
    if payment is not None and payment.action != CHECKOUT and payment.state == PENDING:
        payment.state = FAILED
        payment.error = {"code": "PAYMENT_FAILED", "reason": event.reason or "declined", "message": "declined"}
        payment.updated_at = utcnow()
    if order.status == lifecycle.PENDING_PAYMENT and order.payment_status not in (
        *lifecycle.PAYMENT_CAPTURED_STATUSES,
        lifecycle.PAYMENT_AUTHORIZED,
        lifecycle.PAYMENT_FAILED,
    ):
        order.payment_status = lifecycle.PAYMENT_FAILED
        order.version += 1
        order.updated_at = utcnow()
    return APPLIED


def receive_webhook(
    db: Database, gateways: Gateways, gateway_id: str, payload: bytes, headers: Mapping[str, str]
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
            row.state = apply_event(session, gateway_id, event)
            job = None
            if row.state == WAITING:
                job = _retry_job(session, row)
            else:
                row.applied_at = utcnow()
            return WebhookOutcome(event.id, row.state, job)
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
        job_type="webhook",
        task_name=WEBHOOK_TASK,
        queue=PAYMENTS_QUEUE,
        args={"webhookEventId": row.id},
        owner=SYSTEM,
        order_id=row.order_id,
    )


def _apply_stored(session: Session, row: WebhookEvent) -> str:
    row.attempts += 1
    row.state = apply_event(session, row.gateway_id, normalize(row.payload))
    if row.state != WAITING:
        row.applied_at = utcnow()
    return row.state


def apply_waiting_event(db: Database, args: dict[str, Any]) -> dict[str, Any]:
    """The retry job of a stored event: apply it, or retry later while its subject is not visible."""
    with db.transaction() as session:
        row = session.get(WebhookEvent, args["webhookEventId"], with_for_update=True)
        if row is None:
            raise ResourceNotFound("Unknown webhook event.")
        state = row.state if row.state != WAITING else _apply_stored(session, row)
        event_id = row.event_id
    if state == WAITING:
        raise TransientError(f"event {event_id}: the order or payment it names is not visible yet")
    return {"eventId": event_id, "state": state}


def apply_waiting_for(session: Session, *, order_id: str, checkout_session_id: str | None = None) -> int:
    """Apply events that waited for this order (or checkout session), in the caller's transaction."""
    conditions = [WebhookEvent.order_id == order_id]
    if checkout_session_id:
        conditions.append(WebhookEvent.checkout_session_id == checkout_session_id)
    applied = 0
    for condition in conditions:
        for row in session.scalars(select(WebhookEvent).where(condition, WebhookEvent.state == WAITING)):
            applied += _apply_stored(session, row) != WAITING
    return applied


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
