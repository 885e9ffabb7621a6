"""The payment workflow: request an action, run it at the gateway, and confirm paid orders.

A request writes a ``pending`` payment row and its job in one transaction (the message is sent
after commit). The task then calls the gateway *outside* any transaction, with the payment's
idempotency key, so a redelivered task (worker killed mid-call, retry) reaches the same charge:

- success → the payment ``succeeded`` and, for a capture, the order becomes ``processing``
  (history row, version bump, held stock committed) in one transaction;
- a decline → the payment ``failed`` and the job fails with ``PAYMENT_FAILED`` (never retried);
- "gateway unavailable" → :class:`TransientError`, retried with backoff under the same key;
- a timeout → the outcome is unknown: the payment stays ``pending`` for reconciliation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Database, Job, Order, Payment
from models.ids import new_id
from models.types import utcnow
from services import lifecycle, transitions
from services.errors import InvalidTransition, OrderNotFound, PaymentDeclined, TransientError, ValidationFailed
from services.gateways import Gateways
from services.gateways.base import (
    GatewayDeclined,
    GatewayTimeout,
    GatewayUnavailable,
)
from services.jobs import FINISHED, JobOutcome, JobRef, add_job
from services.money import to_money
from services.principal import SYSTEM, Principal

PAYMENT_TASK = "payments.execute"
CLOSE_CHECKOUT_TASK = "payments.close_checkout"
PAYMENTS_QUEUE = "payments"

PROCESS, AUTHORIZE, CAPTURE, VOID, REFUND, CHECKOUT = "process", "authorize", "capture", "void", "refund", "checkout"
# Money received outside any gateway, recorded by staff (an order moved to ``processing`` by hand).
MANUAL = "manual"
ACTIONS = (PROCESS, AUTHORIZE, CAPTURE, VOID, REFUND)
# Actions whose success means money was captured for the order.
CAPTURING_ACTIONS = (PROCESS, CAPTURE, CHECKOUT, MANUAL)
# A capture that landed on an order already paid: refunded at once, and left out of the order's sums.
DUPLICATE_PAYMENT = "DUPLICATE_PAYMENT"

PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"
# Reconciliation stops asking about a payment after this many attempts (it then needs a person).
MAX_RECONCILE_ATTEMPTS = 10


@dataclass(frozen=True)
class PaymentRequest:
    order_id: str
    action: str
    method: str
    token: str | None
    amount: Decimal | None


@dataclass(frozen=True)
class QueuedPayment:
    transaction_id: str
    job: JobRef


def _invalid(order: Order, message: str) -> InvalidTransition:
    return InvalidTransition(
        message,
        details=[
            {
                "currentStatus": order.status,
                "paymentStatus": order.payment_status,
                "allowedTransitions": list(lifecycle.ORDER_TRANSITIONS.get(order.status, ())),
            }
        ],
    )


def _amount_error(message: str, **extra: Any) -> ValidationFailed:
    return ValidationFailed(message, details=[{"field": "paymentDetails.amount", "message": message, **extra}])


def _payments_of(session: Session, order_id: str) -> list[Payment]:
    """The payments that count for the order: a duplicate capture and its refund cancel out, so
    they are left out (otherwise a staff refund could give back the order's price twice)."""
    rows = list(session.scalars(select(Payment).where(Payment.order_id == order_id).order_by(Payment.created_at)))
    duplicates = {p.id for p in rows if is_duplicate(p)}
    return [p for p in rows if p.id not in duplicates and p.parent_id not in duplicates]


def is_duplicate(payment: Payment) -> bool:
    return bool(payment.error) and payment.error.get("code") == DUPLICATE_PAYMENT


def _sum(payments: list[Payment], actions: tuple[str, ...], states: tuple[str, ...] = (SUCCEEDED,)) -> Decimal:
    return to_money(sum((p.amount for p in payments if p.action in actions and p.state in states), Decimal(0)))


def _last(payments: list[Payment], actions: tuple[str, ...]) -> Payment | None:
    matching = [
        p
        for p in payments
        if p.action in actions and p.state == SUCCEEDED and (p.gateway_transaction_id or p.action == MANUAL)
    ]
    return matching[-1] if matching else None


def _plan(order: Order, payments: list[Payment], command: PaymentRequest) -> tuple[Decimal, Payment | None]:
    """Check that ``command`` may run now; returns the amount and the payment it acts on."""
    in_flight = [p.id for p in payments if p.state == PENDING and p.action != CHECKOUT]
    if in_flight:
        raise InvalidTransition(
            "Another payment action for this order has not finished (or its outcome is still unknown).",
            details=[{"currentStatus": order.status, "paymentStatus": order.payment_status, "pending": in_flight}],
        )
    action = command.action
    if action in (PROCESS, AUTHORIZE):
        if order.status != lifecycle.PENDING_PAYMENT or order.payment_status in (
            *lifecycle.PAYMENT_CAPTURED_STATUSES,
            lifecycle.PAYMENT_AUTHORIZED,
            lifecycle.PAYMENT_REFUNDED,
        ):
            raise _invalid(order, "The order is not awaiting payment.")
        missing = [
            {"field": f"paymentDetails.{name}", "message": f"required for {action}"}
            for name, value in (("token", command.token), ("amount", command.amount))
            if value is None
        ]
        if missing:
            raise ValidationFailed(details=missing)
        outstanding = order.total_amount - _sum(payments, CAPTURING_ACTIONS)
        if to_money(command.amount) != outstanding:
            raise _amount_error("must equal the order's outstanding amount", expected=outstanding)
        return outstanding, None
    if action in (CAPTURE, VOID):
        authorization = _last(payments, (AUTHORIZE,))
        if order.payment_status != lifecycle.PAYMENT_AUTHORIZED or authorization is None:
            raise _invalid(order, f"Nothing to {action}: the order has no open authorization.")
        if action == CAPTURE and order.status != lifecycle.PENDING_PAYMENT:
            # A cancelled order's authorization is voided, never captured.
            raise _invalid(order, f"A {order.status} order cannot be captured.")
        if action == CAPTURE and command.amount is not None and to_money(command.amount) != authorization.amount:
            raise _amount_error("must equal the authorized amount", expected=authorization.amount)
        return authorization.amount, authorization
    # refund
    charge = _last(payments, CAPTURING_ACTIONS)
    if order.payment_status not in lifecycle.PAYMENT_CAPTURED_STATUSES or charge is None:
        raise _invalid(order, "Nothing to refund: no captured payment.")
    refundable = _sum(payments, CAPTURING_ACTIONS) - _sum(payments, (REFUND,))
    amount = refundable if command.amount is None else to_money(command.amount)
    if amount <= 0 or amount > refundable:
        raise _amount_error("must be more than 0 and at most the refundable amount", refundable=refundable)
    return amount, charge


def request_payment(
    db: Database, principal: Principal, command: PaymentRequest, *, request_id: str | None = None
) -> QueuedPayment:
    """Record a payment attempt and queue its task (the caller sends the message after commit)."""
    if command.action not in ACTIONS:
        raise ValidationFailed(details=[{"field": "action", "message": f"one of {list(ACTIONS)}"}])
    if command.action == REFUND:
        # Giving money back is staff's decision: a customer refunding its own shipped order would
        # keep the goods and the money. Checked before the order, so it reveals nothing about it.
        principal.require_role("admin", "ops")
    with db.transaction() as session:
        order = session.get(Order, command.order_id, with_for_update=True)
        if order is None or not principal.can_see_customer(order.customer_id):
            raise OrderNotFound(details=[{"orderId": command.order_id}])
        amount, parent = _plan(order, _payments_of(session, order.id), command)
        return _add_attempt(
            session,
            order,
            action=command.action,
            method=command.method,
            amount=amount,
            parent=parent,
            token=command.token if command.action in (PROCESS, AUTHORIZE) else None,
            principal=principal,
            request_id=request_id,
        )


def _add_attempt(
    session: Session,
    order: Order,
    *,
    action: str,
    method: str | None,
    amount: Decimal,
    parent: Payment | None,
    token: str | None,
    principal: Principal,
    request_id: str | None,
) -> QueuedPayment:
    """A ``pending`` payment row and its job, in the caller's transaction."""
    now = utcnow()
    transaction_id = new_id("txn")
    job = add_job(
        session,
        job_type="payment",
        task_name=PAYMENT_TASK,
        queue=PAYMENTS_QUEUE,
        args={"transactionId": transaction_id},
        owner=principal,
        order_id=order.id,
        request_id=request_id,
        customer_id=order.customer_id,
    )
    session.add(
        Payment(
            id=transaction_id,
            order_id=order.id,
            gateway_id=order.payment_gateway_id,
            action=action,
            method=method,
            amount=amount,
            currency=order.currency,
            state=PENDING,
            gateway_transaction_id=parent.gateway_transaction_id if parent is not None else None,
            parent_id=parent.id if parent is not None else None,
            # Derived from the attempt: every call for it (first try, retry, redelivery) sends it.
            idempotency_key=f"{transaction_id}:{action}",
            token=token,
            job_id=job.job_id,
            attempts=0,
            created_at=now,
            updated_at=now,
        )
    )
    return QueuedPayment(transaction_id=transaction_id, job=job)


def queue_refund_in(
    session: Session, order: Order, amount: Decimal, *, principal: Principal, request_id: str | None
) -> QueuedPayment | None:
    """A refund of up to ``amount`` against the order's last charge, queued by a lifecycle
    transition in its own transaction (cancelling a paid order or its items, ``completed →
    refunded``). Unlike a refund requested through the API it does not wait for other payment
    actions: it is capped by what is captured and not yet refunded or being refunded, so
    refunds queued side by side never give back more than was paid. ``None``: nothing to refund.
    """
    payments = _payments_of(session, order.id)
    charge = _last(payments, CAPTURING_ACTIONS)
    if charge is None:
        return None
    refundable = _sum(payments, CAPTURING_ACTIONS) - _sum(payments, (REFUND,), (SUCCEEDED, PENDING))
    amount = min(to_money(amount), refundable)
    if amount <= 0:
        return None
    if charge.action == MANUAL:
        # Money received outside the gateway goes back the same way: recorded, not sent.
        _record_manual_refund(session, order, charge, amount, refundable)
        return None
    return _add_attempt(
        session,
        order,
        action=REFUND,
        method=charge.method,
        amount=amount,
        parent=charge,
        token=None,
        principal=principal,
        request_id=request_id,
    )


def queue_duplicate_refund_in(session: Session, order: Order, payment: Payment, *, request_id: str | None) -> JobRef:
    """A refund of all of ``payment``, a capture that landed on an order already paid for."""
    payment.error = {"code": DUPLICATE_PAYMENT, "message": "The order was already paid; refunded at once."}
    return _add_attempt(
        session,
        order,
        action=REFUND,
        method=payment.method,
        amount=payment.amount,
        parent=payment,
        token=None,
        principal=SYSTEM,
        request_id=request_id,
    ).job


def _record_manual_refund(
    session: Session, order: Order, charge: Payment, amount: Decimal, refundable: Decimal
) -> None:
    now = utcnow()
    session.add(
        Payment(
            id=new_id("txn"),
            order_id=order.id,
            gateway_id=charge.gateway_id,
            action=REFUND,
            method=MANUAL,
            amount=amount,
            currency=order.currency,
            state=SUCCEEDED,
            parent_id=charge.id,
            idempotency_key=f"manual-refund:{new_id('key')}",
            attempts=0,
            created_at=now,
            updated_at=now,
        )
    )
    order.payment_status = lifecycle.PAYMENT_REFUNDED if amount >= refundable else lifecycle.PAYMENT_PARTIALLY_REFUNDED


def record_manual_payment(session: Session, order: Order, *, principal: Principal, reason: str | None) -> Payment:
    """Staff confirm that the order's outstanding amount was received outside the gateway (cash,
    bank transfer): a succeeded ``manual`` payment, and the order's payment status ``completed``.

    The caller moves the order to ``processing`` in the same transaction. Open checkout sessions
    are closed by the job the transition queues, so the customer cannot pay a second time.
    """
    payments = _payments_of(session, order.id)
    outstanding = order.total_amount - _sum(payments, CAPTURING_ACTIONS)
    now = utcnow()
    payment = Payment(
        id=new_id("txn"),
        order_id=order.id,
        gateway_id=order.payment_gateway_id,
        action=MANUAL,
        method=MANUAL,
        amount=to_money(max(outstanding, Decimal(0))),
        currency=order.currency,
        state=SUCCEEDED,
        idempotency_key=f"manual:{order.id}:{order.version}",
        error=None,
        attempts=0,
        created_at=now,
        updated_at=now,
    )
    session.add(payment)
    order.payment_status = lifecycle.PAYMENT_COMPLETED
    return payment


def queue_void_in(session: Session, order: Order, *, principal: Principal, request_id: str | None) -> JobRef | None:
    """Void the order's open authorization (the order is being cancelled): the hold on the
    customer's card is released instead of waiting for it to lapse."""
    if order.payment_status != lifecycle.PAYMENT_AUTHORIZED:
        return None
    payments = _payments_of(session, order.id)
    authorization = _last(payments, (AUTHORIZE,))
    if authorization is None or any(p.action == VOID and p.state != FAILED for p in payments):
        return None
    return _add_attempt(
        session,
        order,
        action=VOID,
        method=authorization.method,
        amount=authorization.amount,
        parent=authorization,
        token=None,
        principal=principal,
        request_id=request_id,
    ).job


def has_attempt_in_flight(session: Session, order_id: str) -> bool:
    """A direct payment action (not a hosted checkout) whose outcome is not known yet."""
    return any(p.state == PENDING and p.action != CHECKOUT for p in _payments_of(session, order_id))


def open_checkout_sessions(session: Session, order_id: str) -> list[Payment]:
    return list(
        session.scalars(
            select(Payment).where(
                Payment.order_id == order_id,
                Payment.action == CHECKOUT,
                Payment.state == PENDING,
                Payment.checkout_session_id.is_not(None),
            )
        )
    )


def queue_close_checkout_in(
    session: Session, order: Order, *, principal: Principal, request_id: str | None
) -> JobRef | None:
    """A job that expires the order's open hosted checkout sessions at the gateway (the order was
    paid another way, or cancelled), so the customer cannot pay it again through them."""
    if not open_checkout_sessions(session, order.id):
        return None
    return add_job(
        session,
        job_type="close_checkout",
        task_name=CLOSE_CHECKOUT_TASK,
        queue=PAYMENTS_QUEUE,
        args={"orderId": order.id},
        owner=principal,
        order_id=order.id,
        request_id=request_id,
        customer_id=order.customer_id,
    )


# -- confirming a paid order (shared by the task, the webhook and the checkout return) ---------------


def _set_payment_status(order: Order, payment_status: str) -> None:
    if order.payment_status != payment_status:
        order.payment_status = payment_status
        order.version += 1
        order.updated_at = utcnow()


def mark_order_paid(
    session: Session, order: Order, *, actor: str, reason: str, request_id: str | None = None
) -> list[JobRef] | None:
    """``pending_payment`` → ``processing`` through the lifecycle's one transition function (history
    row, version bump, held stock committed, other checkout sessions closed); the jobs that queued,
    or None if the order is not payable."""
    if not lifecycle.order_transition_allowed(order.status, lifecycle.PROCESSING) or (
        order.status != lifecycle.PENDING_PAYMENT
    ):
        return None
    order.payment_status = lifecycle.PAYMENT_COMPLETED
    change = transitions.transition_order(
        session, order, lifecycle.PROCESSING, reason=reason, principal=SYSTEM, actor=actor, request_id=request_id
    )
    return change.jobs


def confirm_payment(
    session: Session,
    order: Order,
    payment: Payment,
    *,
    transaction_id: str | None,
    actor: str,
    reason: str,
    request_id: str | None = None,
) -> list[JobRef]:
    """Record ``payment`` as succeeded and apply it to ``order`` (idempotent; caller holds the locks).

    Returns the jobs this queued, for the caller to send after commit: a second capture on an
    order already paid, or a capture on a cancelled order, is refunded at once, in full.
    """
    already = payment.state == SUCCEEDED
    payment.state = SUCCEEDED
    payment.gateway_transaction_id = payment.gateway_transaction_id or transaction_id
    payment.updated_at = utcnow()
    if not already:
        payment.error = None
    if payment.action not in CAPTURING_ACTIONS:
        return []
    paid = mark_order_paid(session, order, actor=actor, reason=reason, request_id=request_id)
    if paid is not None:
        return paid
    if already:
        return []
    others = session.scalars(
        select(Payment.id).where(
            Payment.order_id == order.id,
            Payment.id != payment.id,
            Payment.action.in_(CAPTURING_ACTIONS),
            Payment.state == SUCCEEDED,
        )
    ).all()
    if others:
        return [queue_duplicate_refund_in(session, order, payment, request_id=request_id)]
    if order.status == lifecycle.CANCELLED:
        # The charge reached the gateway before the order was cancelled, so the cancellation found
        # no captured money to give back: refund it now, once (a repeated confirmation returns above).
        _set_payment_status(order, lifecycle.PAYMENT_COMPLETED)
        payment.error = {"code": "ORDER_CANCELLED", "message": "Captured after the order was cancelled; refunded."}
        refund = queue_refund_in(session, order, payment.amount, principal=SYSTEM, request_id=request_id)
        return [refund.job] if refund is not None else []
    if order.status != lifecycle.PROCESSING:
        payment.error = {"code": "ORDER_NOT_PAYABLE", "message": f"Payment arrived for a {order.status} order."}
    return []


# -- running an attempt (the payments task) -----------------------------------------------------------


@dataclass(frozen=True)
class _Attempt:
    id: str
    order_id: str
    gateway_id: str
    action: str
    amount: Decimal
    currency: str
    token: str | None
    idempotency_key: str
    gateway_transaction_id: str | None


def _result(order: Order, payment: Payment) -> dict[str, Any]:
    return {"orderId": order.id, "paymentStatus": order.payment_status, "transactionId": payment.id}


def _declined(payment: Payment) -> PaymentDeclined:
    error = payment.error or {}
    return PaymentDeclined(
        error.get("message") or "The payment was declined.",
        details=[{"reason": error.get("reason", "declined"), "transactionId": payment.id}],
    )


def _start(db: Database, transaction_id: str) -> _Attempt | dict[str, Any]:
    """Lock the payment, answer at once if it already finished, else count the attempt."""
    refusal: InvalidTransition | None = None
    with db.transaction() as session:
        started = _start_in(session, transaction_id)
        if isinstance(started, InvalidTransition):
            refusal = started
    if refusal is not None:
        raise refusal
    return started  # type: ignore[return-value]


def _start_in(session: Session, transaction_id: str) -> _Attempt | dict[str, Any] | InvalidTransition:
    payment = session.get(Payment, transaction_id, with_for_update=True)
    if payment is None:
        raise ValidationFailed("Unknown payment.", details=[{"transactionId": transaction_id}])
    order = session.get(Order, payment.order_id, with_for_update=True)
    assert order is not None
    if payment.state == SUCCEEDED:
        return _result(order, payment)
    if payment.state == FAILED:
        raise _declined(payment)
    if (
        payment.action in (PROCESS, AUTHORIZE, CAPTURE)
        and payment.attempts == 0
        and order.status != lifecycle.PENDING_PAYMENT
    ):
        # Paid another way (hosted checkout) or cancelled before this attempt reached the gateway.
        payment.state = FAILED
        payment.error = {"code": "INVALID_STATUS", "reason": "order_not_payable", "message": "Not payable."}
        return _invalid(order, "The order is no longer awaiting payment.")
    payment.attempts += 1
    payment.updated_at = utcnow()
    return _Attempt(
        payment.id,
        order.id,
        payment.gateway_id,
        payment.action,
        payment.amount,
        payment.currency,
        payment.token,
        payment.idempotency_key,
        payment.gateway_transaction_id,
    )


def _call_gateway(gateways: Gateways, attempt: _Attempt) -> str | None:
    """One gateway call for the attempt; returns the gateway's transaction id."""
    gateway = gateways.get(attempt.gateway_id)
    if attempt.action in (PROCESS, AUTHORIZE):
        charge = gateway.charge(
            amount=attempt.amount,
            currency=attempt.currency,
            token=attempt.token or "",
            capture=attempt.action == PROCESS,
            idempotency_key=attempt.idempotency_key,
            metadata={"orderId": attempt.order_id, "paymentId": attempt.id},
        )
        return charge.transaction_id
    if attempt.action == CAPTURE:
        assert attempt.gateway_transaction_id is not None
        gateway.capture(attempt.gateway_transaction_id, amount=attempt.amount, idempotency_key=attempt.idempotency_key)
        return attempt.gateway_transaction_id
    if attempt.action == VOID:
        assert attempt.gateway_transaction_id is not None
        gateway.void(attempt.gateway_transaction_id, idempotency_key=attempt.idempotency_key)
        return attempt.gateway_transaction_id
    if attempt.gateway_transaction_id is None:
        return None  # the refund of a manual payment: given back outside the gateway, recorded here
    refund = gateway.refund(
        attempt.gateway_transaction_id, amount=attempt.amount, idempotency_key=attempt.idempotency_key
    )
    return refund.refund_id


def _finish_success(db: Database, attempt: _Attempt, gateway_txn: str | None, request_id: str | None) -> JobOutcome:
    with db.transaction() as session:
        payment = session.get(Payment, attempt.id, with_for_update=True)
        order = session.get(Order, attempt.order_id, with_for_update=True)
        assert payment is not None and order is not None
        if payment.state == SUCCEEDED:
            return JobOutcome(_result(order, payment))
        actor = f"gateway:{attempt.gateway_id}"
        if attempt.action == REFUND:
            payment.gateway_transaction_id = gateway_txn
        jobs = confirm_payment(
            session,
            order,
            payment,
            transaction_id=gateway_txn,
            actor=actor,
            reason=f"payment captured ({attempt.action})",
            request_id=request_id,
        )
        if attempt.action == AUTHORIZE:
            _set_payment_status(order, lifecycle.PAYMENT_AUTHORIZED)
            # The card is held for this order: its hosted checkout must not take a second payment.
            close = queue_close_checkout_in(session, order, principal=SYSTEM, request_id=request_id)
            jobs += [close] if close is not None else []
        elif attempt.action == VOID:
            _set_payment_status(order, lifecycle.PAYMENT_VOIDED)
        elif attempt.action == REFUND and _is_duplicate_id(session, payment.parent_id):
            pass  # a duplicate capture given back: the order's own payment status is unchanged
        elif attempt.action == REFUND:
            payments = _payments_of(session, order.id)
            left = _sum(payments, CAPTURING_ACTIONS) - _sum(payments, (REFUND,))
            _set_payment_status(
                order, lifecycle.PAYMENT_REFUNDED if left <= 0 else lifecycle.PAYMENT_PARTIALLY_REFUNDED
            )
            if left <= 0 and lifecycle.order_transition_allowed(order.status, lifecycle.REFUNDED):
                # payment_status is already "refunded", so the transition queues no second refund
                transitions.transition_order(
                    session,
                    order,
                    lifecycle.REFUNDED,
                    reason="payment refunded in full",
                    principal=SYSTEM,
                    actor=actor,
                    request_id=request_id,
                )
        return JobOutcome(_result(order, payment), send=jobs)


def _is_duplicate_id(session: Session, payment_id: str | None) -> bool:
    parent = session.get(Payment, payment_id) if payment_id else None
    return parent is not None and is_duplicate(parent)


def _finish_declined(db: Database, attempt: _Attempt, declined: GatewayDeclined) -> PaymentDeclined:
    with db.transaction() as session:
        payment = session.get(Payment, attempt.id, with_for_update=True)
        order = session.get(Order, attempt.order_id, with_for_update=True)
        assert payment is not None and order is not None
        payment.state = FAILED
        payment.error = {"code": "PAYMENT_FAILED", "reason": declined.reason, "message": declined.message}
        if attempt.action in (PROCESS, AUTHORIZE):
            payment.gateway_transaction_id = payment.gateway_transaction_id or declined.transaction_id
            if order.status == lifecycle.PENDING_PAYMENT:
                _set_payment_status(order, lifecycle.PAYMENT_FAILED)
        payment.updated_at = utcnow()
        return _declined(payment)


def _finish_unknown(db: Database, attempt: _Attempt, timeout: GatewayTimeout) -> dict[str, Any]:
    with db.transaction() as session:
        payment = session.get(Payment, attempt.id, with_for_update=True)
        order = session.get(Order, attempt.order_id, with_for_update=True)
        assert payment is not None and order is not None
        payment.error = {"code": "GATEWAY_TIMEOUT", "message": f"Outcome unknown: {timeout}"}
        payment.updated_at = utcnow()
        if attempt.action in (PROCESS, AUTHORIZE) and order.status == lifecycle.PENDING_PAYMENT:
            _set_payment_status(order, lifecycle.PAYMENT_PENDING)
        return {"orderId": order.id, "paymentStatus": lifecycle.PAYMENT_PENDING, "transactionId": payment.id}


def execute_payment(db: Database, gateways: Gateways, args: dict[str, Any]) -> dict[str, Any] | JobOutcome:
    """Run one payment attempt at its gateway; safe to run again for the same attempt."""
    started = _start(db, args["transactionId"])
    if isinstance(started, dict):
        return started
    try:
        gateway_txn = _call_gateway(gateways, started)
    except GatewayDeclined as declined:
        raise _finish_declined(db, started, declined) from None
    except GatewayUnavailable as exc:
        raise TransientError(f"gateway unavailable: {exc}") from exc
    except GatewayTimeout as timeout:
        return _finish_unknown(db, started, timeout)
    return _finish_success(db, started, gateway_txn, args.get("requestId"))


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
                job_type="payment",
                task_name=PAYMENT_TASK,
                queue=PAYMENTS_QUEUE,
                args={"transactionId": payment.id},
                owner=SYSTEM,
                order_id=payment.order_id,
            )
            payment.job_id = job.job_id
            payment.updated_at = utcnow()
            refs.append(job)
        return refs
