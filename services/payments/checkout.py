"""Hosted checkout: the step queued with every new order, the redirect, and the customer's return.

The checkout task opens a session at the order's gateway (idempotency key derived from the order,
so a retried task reuses the session) and stores its URL on the order; ``paymentUrl`` redirects
there. Paying leads to the order becoming ``processing`` through the gateway's signed webhook and,
independently, through the customer's return to ``success_url`` (which asks the gateway): both
take the order lock and apply the same idempotent confirmation, so whichever comes second finds
the work done.

Once the order stops awaiting payment (paid directly, authorized, paid by hand, cancelled) its
open sessions are expired at the gateway by :func:`close_checkouts`, so no second payment can be
taken through them; one the customer paid just before it closed is confirmed, which refunds it at
once when the order was already paid or cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from models import Database, Order, Payment, WebhookEvent
from models.ids import new_id
from models.statements import insert_unless_exists
from models.types import utcnow
from services.jobs.outbox import JobOutcome, JobRef
from services.kernel import lifecycle
from services.kernel.errors import OrderNotFound, PaymentDeclined, ServiceUnavailable, TransientError, ValidationFailed
from services.ledger.book import CHECKOUT, FAILED, PENDING, open_checkout_sessions
from services.payments.confirmation import confirm_payment
from services.payments.gateways.base import CheckoutState, GatewayDeclined, GatewayTimeout, GatewayUnavailable
from services.payments.gateways.registry import Gateways
from services.payments.webhooks import WAITING, apply_waiting_for, checkout_payment, recorded_checkout


@dataclass(frozen=True)
class CheckoutStatus:
    order_id: str
    status: str
    payment_status: str
    jobs: list[JobRef] = field(default_factory=list)  # refunds or closings, sent after commit


_ORDERS, _PAYMENTS, _EVENTS = Order.__table__, Payment.__table__, WebhookEvent.__table__
_ORDER_TO_OPEN = select(
    _ORDERS.c.checkout_url,
    _ORDERS.c.status,
    _ORDERS.c.total_amount,
    _ORDERS.c.currency,
    _ORDERS.c.payment_gateway_id,
    _ORDERS.c.payment_method,
    _ORDERS.c.hold_expires_at,
).where(_ORDERS.c.id == bindparam("order_id"))
_SET_CHECKOUT_URL = (
    update(_ORDERS)
    .where(_ORDERS.c.id == bindparam("order_id"), _ORDERS.c.checkout_url.is_(None))
    .values(checkout_url=bindparam("url"))
)
_CHECKOUT_URL = select(_ORDERS.c.checkout_url).where(_ORDERS.c.id == bindparam("order_id"))
_ANY_WAITING = (
    select(_EVENTS.c.id)
    .where(
        _EVENTS.c.state == WAITING,
        or_(_EVENTS.c.order_id == bindparam("order_id"), _EVENTS.c.checkout_session_id == bindparam("session_id")),
    )
    .limit(1)
)


@lru_cache(maxsize=4)
def _record_opened_in_one_statement(payment_columns: tuple[str, ...]) -> Select[Any]:
    """PostgreSQL: what the checkout task records once the gateway answered, as ONE autocommit
    statement instead of a six-round-trip transaction: the URL set unless one is (a CTE), the
    session's payment inserted unless it exists (a CTE), and the order's URL of record and whether
    a webhook waits for this session selected beside them. The URL comes from the UPDATE's
    ``RETURNING`` when it set it (the statement's snapshot still shows the old value)."""
    set_url = _SET_CHECKOUT_URL.returning(_ORDERS.c.checkout_url).cte("set_url")
    values = {name: bindparam(f"p_{name}", type_=_PAYMENTS.c[name].type) for name in payment_columns}
    record = insert_unless_exists(_PAYMENTS, ["gateway_id", "checkout_session_id"], "postgresql").values(values)
    url = func.coalesce(select(set_url.c.checkout_url).scalar_subquery(), _CHECKOUT_URL.scalar_subquery())
    return select(url.label("url"), _ANY_WAITING.exists().label("waiting")).add_cte(set_url, record.cte("record"))


def open_checkout(
    db: Database, gateways: Gateways, args: dict[str, Any], *, request_id: str | None = None
) -> dict[str, Any] | JobOutcome:
    """Open the order's hosted checkout session once and store its URL on the order.

    ``args`` carry where the gateway sends the customer back (``successUrl``, ``cancelUrl``: the
    API's routes, written into the job when the order was placed). Once the gateway answered,
    one short transaction: the URL stored if none is, the session's payment row inserted unless
    it exists, and (only if an event waited for them) the webhooks that arrived first applied.
    """
    order_id = args["orderId"]
    with db.read_engine.connect() as conn:
        order = conn.execute(_ORDER_TO_OPEN, {"order_id": order_id}).first()
    if order is None:
        raise OrderNotFound(details=[{"orderId": order_id}])
    if order.checkout_url or order.status != lifecycle.PENDING_PAYMENT:
        return {"orderId": order_id, "status": order.status, "checkoutUrl": order.checkout_url}
    gateway = gateways.get(order.payment_gateway_id)
    try:
        opened = gateway.create_checkout_session(
            amount=order.total_amount,
            currency=order.currency,
            order_id=order_id,
            success_url=args["successUrl"],
            cancel_url=args["cancelUrl"],
            expires_at=order.hold_expires_at,
            idempotency_key=f"checkout:{order_id}",
        )
    except (GatewayUnavailable, GatewayTimeout) as exc:
        raise TransientError(f"checkout session not opened: {exc}") from exc
    except GatewayDeclined as exc:
        raise PaymentDeclined(
            "The gateway refused to open a checkout session.", details=[{"reason": exc.reason}]
        ) from None
    now = utcnow()
    payment = {
        "id": new_id("txn"),
        "order_id": order_id,
        "gateway_id": order.payment_gateway_id,
        "action": CHECKOUT,
        "method": order.payment_method,
        "amount": order.total_amount,
        "currency": order.currency,
        "state": PENDING,
        "checkout_session_id": opened.id,
        "idempotency_key": f"checkout:{order_id}:{opened.id}",
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }
    jobs: list[JobRef] = []
    if db.write_engine.dialect.name == "postgresql":
        params = {"order_id": order_id, "url": opened.url, "session_id": opened.id}
        params.update({f"p_{name}": value for name, value in payment.items()})
        with db.autocommit() as conn:
            row = conn.execute(_record_opened_in_one_statement(tuple(payment)), params).one()
        url, waiting = row.url, row.waiting
    else:
        with db.connection() as conn:
            conn.execute(_SET_CHECKOUT_URL, {"order_id": order_id, "url": opened.url})
            record = insert_unless_exists(_PAYMENTS, ["gateway_id", "checkout_session_id"], conn.dialect.name)
            conn.execute(record, payment)
            url = conn.execute(_CHECKOUT_URL, {"order_id": order_id}).scalar()
            waiting = conn.execute(_ANY_WAITING, {"order_id": order_id, "session_id": opened.id}).first() is not None
    if waiting:  # rare: a webhook came before the session was recorded
        with db.transaction() as session:
            jobs = apply_waiting_for(session, order_id=order_id, checkout_session_id=opened.id, request_id=request_id)
    return JobOutcome({"orderId": order_id, "status": order.status, "checkoutUrl": url}, send=jobs)


def checkout_url(db: Database, order_id: str) -> str | None:
    """The gateway page of the order's checkout, once the checkout task has opened it."""
    with db.reader() as session:
        order = session.get(Order, order_id)
        if order is None:
            raise OrderNotFound(details=[{"orderId": order_id}])
        return order.checkout_url


def complete_checkout(db: Database, gateways: Gateways, order_id: str, session_id: str) -> CheckoutStatus:
    """The customer came back from the gateway: ask it, and confirm the order if it was paid."""
    with db.reader() as session:
        order = session.get(Order, order_id)
        if order is None:
            raise OrderNotFound(details=[{"orderId": order_id}])
        gateway_id = order.payment_gateway_id
    try:
        state = gateways.get(gateway_id).retrieve_checkout_session(session_id)
    except GatewayDeclined:
        raise ValidationFailed("Unknown checkout session.", details=[{"field": "session_id"}]) from None
    except (GatewayUnavailable, GatewayTimeout):
        raise ServiceUnavailable("The payment gateway did not answer; the order updates when it does.") from None
    if state.order_id != order_id:
        raise ValidationFailed("The checkout session belongs to another order.", details=[{"field": "session_id"}])
    with db.transaction() as session:
        # The payment row before the order row: the order webhooks and payment tasks lock them in
        # (the other order deadlocks against a webhook confirming the same session).
        payment = recorded_checkout(session, gateway_id, session_id) if state.paid else None
        order = session.get(Order, order_id, with_for_update=True)
        assert order is not None
        jobs: list[JobRef] = []
        if state.paid:
            if payment is None and state.amount == order.total_amount and state.currency in (None, order.currency):
                payment = checkout_payment(session, order, gateway_id, session_id, state.amount)
            if payment is None or payment.amount != state.amount:
                raise ValidationFailed(
                    "The checkout session does not match the order's amount.", details=[{"field": "session_id"}]
                )
            jobs = confirm_payment(
                session,
                order,
                payment,
                transaction_id=state.transaction_id,
                actor=f"gateway:{gateway_id}",
                reason="payment confirmed on return from checkout",
            )
        return CheckoutStatus(order.id, order.status, order.payment_status, jobs)


def close_checkouts(
    db: Database, gateways: Gateways, args: dict[str, Any], *, request_id: str | None = None
) -> JobOutcome:
    """Expire the order's open checkout sessions at the gateway, one transaction per session."""
    order_id = args["orderId"]
    with db.reader() as session:
        sessions = [(p.id, p.gateway_id, p.checkout_session_id) for p in open_checkout_sessions(session, order_id)]
    closed, paid, jobs = 0, 0, []
    for payment_id, gateway_id, session_id in sessions:
        try:
            state = gateways.get(gateway_id).expire_checkout(session_id)
        except GatewayDeclined:
            state = None  # the gateway does not know it: nothing there can take money
        except (GatewayUnavailable, GatewayTimeout) as exc:
            raise TransientError(f"checkout session {session_id} not closed: {exc}") from exc
        with db.transaction() as session:
            found = _settle_closed(session, order_id, payment_id, gateway_id, state, request_id)
        if found is None:
            continue
        paid += found.paid
        closed += not found.paid
        jobs += found.jobs
    return JobOutcome({"orderId": order_id, "closed": closed, "paid": paid}, send=jobs)


@dataclass(frozen=True)
class _Closed:
    paid: bool
    jobs: list[JobRef]


def _settle_closed(
    session: Session,
    order_id: str,
    payment_id: str,
    gateway_id: str,
    state: CheckoutState | None,
    request_id: str | None,
) -> _Closed | None:
    # The payment row before the order row: the order webhooks and payment tasks lock them in.
    payment = session.get(Payment, payment_id, with_for_update=True)
    order = session.get(Order, order_id, with_for_update=True)
    if payment is None or order is None or payment.state != PENDING:
        return None  # settled meanwhile by its webhook or the customer's return
    if state is not None and state.paid:
        jobs = confirm_payment(
            session,
            order,
            payment,
            transaction_id=state.transaction_id,
            actor=f"gateway:{gateway_id}",
            reason="payment found when its checkout was closed",
            request_id=request_id,
        )
        return _Closed(True, jobs)
    payment.state = FAILED
    payment.error = {"code": "CHECKOUT_CLOSED", "message": f"Closed: the order is {order.status}."}
    payment.updated_at = utcnow()
    return _Closed(False, [])
