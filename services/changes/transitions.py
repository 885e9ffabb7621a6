"""Every order status change goes through :func:`transition_order`.

It checks the lifecycle table (``services.lifecycle``), bumps the order's version with a
conditional ``UPDATE … WHERE version = :expected``, writes the status-history row and runs the
transition's side effects, all inside the caller's transaction. Callers lock the order row first
(:func:`lock_order`), so concurrent changes queue up instead of losing one another; the version
guard is the second line of defence. Jobs the side effects queue (refunds) are returned so the
caller can send them after commit.

:func:`change_status` is the ``PATCH /api/orders/{id}/status`` use case built on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from models import Database, Order, OrderItem, StatusHistory
from models.types import utcnow
from services.events.record import ORDER_CANCELLED, ORDER_STATUS_CHANGED, add_events, event_row
from services.jobs.outbox import JobRef
from services.kernel import lifecycle
from services.kernel.errors import ConcurrentUpdate, InvalidTransition, OrderNotFound, PreconditionFailed
from services.kernel.money import to_money
from services.kernel.principal import Principal
from services.ledger.attempts import queue_payment_closing, queue_refund, record_offline_payment
from services.orders import stock

# Statuses that hand goods over: only an order whose money was captured (and not all given back) may reach them.
PAID_ONLY_STATUSES = frozenset({lifecycle.SHIPPED, lifecycle.COMPLETED})


@dataclass(frozen=True)
class Transition:
    order_id: str
    from_status: str
    to_status: str
    version: int
    updated_at: datetime
    jobs: list[JobRef] = field(default_factory=list)


def lock_order(session: Session, order_id: str) -> Order | None:
    """The order row, locked for the rest of the transaction (SQLite: the write lock is already held)."""
    return session.scalar(
        select(Order).where(Order.id == order_id).with_for_update().execution_options(populate_existing=True)
    )


def visible_order(session: Session, principal: Principal, order_id: str) -> Order:
    """The locked order if the caller may see it; another customer's order does not exist."""
    order = lock_order(session, order_id)
    if order is None or not principal.can_see_customer(order.customer_id):
        raise OrderNotFound(details=[{"orderId": order_id}])
    return order


def invalid_transition(order: Order, target: str) -> InvalidTransition:
    known = target in lifecycle.ORDER_TRANSITIONS
    message = (
        f"An order in status '{order.status}' cannot become '{target}'."
        if known
        else f"'{target}' is not an order status."
    )
    return InvalidTransition(
        message,
        details=[
            {
                "orderId": order.id,
                "currentStatus": order.status,
                "requestedStatus": target,
                "allowedTransitions": list(lifecycle.allowed_order_transitions(order.status)),
            }
        ],
    )


def unpaid_transition(order: Order, target: str) -> InvalidTransition:
    return InvalidTransition(
        f"An order whose payment status is '{order.payment_status}' cannot become '{target}': "
        "it must be paid (and not refunded in full) first.",
        details=[
            {
                "orderId": order.id,
                "currentStatus": order.status,
                "requestedStatus": target,
                "paymentStatus": order.payment_status,
                "allowedTransitions": list(lifecycle.allowed_order_transitions(order.status)),
            }
        ],
    )


def live_items(session: Session, order_id: str) -> list[OrderItem]:
    return list(
        session.scalars(
            select(OrderItem)
            .where(OrderItem.order_id == order_id, OrderItem.status.in_(lifecycle.LIVE_ITEM_STATUSES))
            .order_by(OrderItem.position)
        )
    )


def give_back_stock(session: Session, order: Order, items: list[OrderItem]) -> None:
    """Cancelled items' stock goes back: the hold is released, or committed stock is restocked."""
    quantities = stock.quantities_by_offer(items)
    if order.status in lifecycle.STOCK_HELD_STATUSES:
        stock.release_hold(session, quantities)
    else:
        stock.restock(session, quantities)


def bump_version(session: Session, order: Order, now: datetime, **values: object) -> None:
    """``UPDATE orders SET version = version + 1, … WHERE id = :id AND version = :expected``."""
    expected = order.version
    result = session.execute(
        update(Order)
        .where(Order.id == order.id, Order.version == expected)
        .values(version=expected + 1, updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise ConcurrentUpdate(f"order {order.id} changed under version {expected}")
    set_committed_value(order, "version", expected + 1)
    set_committed_value(order, "updated_at", now)
    for name, value in values.items():
        set_committed_value(order, name, value)


_HISTORY = insert(StatusHistory.__table__)  # built once; executed with each change's values


def transition_order(
    session: Session,
    order: Order,
    to_status: str,
    *,
    reason: str | None,
    principal: Principal,
    request_id: str | None,
    actor: str | None = None,
    now: datetime | None = None,
) -> Transition:
    """Move a locked order to ``to_status``, with its history row and side effects.

    ``principal`` owns any job the side effects queue; ``actor`` (default: the principal's) names
    who changed the status in the history (``gateway:sandbox`` for a payment confirmation).
    """
    if not lifecycle.order_transition_allowed(order.status, to_status):
        raise invalid_transition(order, to_status)
    if to_status in PAID_ONLY_STATUSES and not lifecycle.money_captured(order.payment_status):
        raise unpaid_transition(order, to_status)
    now = now or utcnow()
    from_status = order.status
    jobs: list[JobRef] = []

    # Side effects that depend on the status being left run before the status changes.
    if to_status == lifecycle.CANCELLED:
        items = live_items(session, order.id)
        give_back_stock(session, order, items)
        set_item_status(session, items, lifecycle.ITEM_CANCELLED)
    elif to_status == lifecycle.PROCESSING and from_status in lifecycle.STOCK_HELD_STATUSES:
        stock.commit_hold(session, stock.quantities_by_offer(live_items(session, order.id)))
    elif to_status == lifecycle.COMPLETED:
        set_item_status(session, live_items(session, order.id), lifecycle.ITEM_FULFILLED)

    bump_version(session, order, now, status=to_status)
    session.connection().execute(
        _HISTORY,
        {
            "order_id": order.id,
            "from_status": from_status,
            "to_status": to_status,
            "reason": reason,
            "actor": actor or principal.actor,
            "request_id": request_id,
            "version": order.version,
            "created_at": now,
        },
    )
    _status_events(session, order, from_status, reason, now)
    if from_status == lifecycle.PENDING_PAYMENT:
        # Paid one way, or cancelled: no hosted checkout may take (another) payment for it.
        jobs += queue_payment_closing(
            session,
            order,
            cancelling=to_status == lifecycle.CANCELLED,
            principal=principal,
            request_id=request_id,
        )
    if to_status in (lifecycle.CANCELLED, lifecycle.REFUNDED):
        # Cancelling a paid order gives back what is left of it (cancelled items were refunded
        # as they went); ``completed → refunded`` refunds the order in full.
        refund = queue_refund(
            session, order, order.total_amount, reason=reason, principal=principal, request_id=request_id
        )
        if refund is not None:
            jobs.append(refund)
    return Transition(order.id, from_status, to_status, order.version, now, jobs)


def _status_events(session: Session, order: Order, from_status: str, reason: str | None, now: datetime) -> None:
    """``order.status_changed`` (and ``order.cancelled``) in the transition's transaction."""
    data = {
        "orderId": order.id,
        "fromStatus": from_status,
        "status": order.status,
        "paymentStatus": order.payment_status,
        "reason": reason,
        "version": order.version,
        "updatedAt": now,
    }
    types = [ORDER_STATUS_CHANGED] + ([ORDER_CANCELLED] if order.status == lifecycle.CANCELLED else [])
    rows = [event_row(kind, order_id=order.id, customer_id=order.customer_id, data=data, now=now) for kind in types]
    add_events(session.connection(), rows)


def set_item_status(session: Session, items: list[OrderItem], status: str) -> None:
    """Move items along their lifecycle (each step checked against the item table)."""
    ids = []
    for item in items:
        if item.status == status:
            continue
        if not lifecycle.item_transition_allowed(item.status, status):
            # pending → fulfilled passes through verified when an order completes
            if not (
                status == lifecycle.ITEM_FULFILLED
                and lifecycle.item_transition_allowed(item.status, lifecycle.ITEM_VERIFIED)
            ):
                raise InvalidTransition(
                    details=[
                        {
                            "itemId": item.id,
                            "currentStatus": item.status,
                            "requestedStatus": status,
                            "allowedTransitions": list(lifecycle.allowed_item_transitions(item.status)),
                        }
                    ]
                )
        ids.append(item.id)
    if ids:
        session.execute(
            update(OrderItem)
            .where(OrderItem.id.in_(ids))
            .values(status=status)
            .execution_options(synchronize_session=False)
        )
        for item in items:
            if item.id in ids:
                set_committed_value(item, "status", status)


def live_total(items: list[OrderItem]) -> Decimal:
    return to_money(
        sum(
            (item.price * item.quantity for item in items if item.status != lifecycle.ITEM_CANCELLED),
            Decimal(0),
        )
    )


# --- PATCH /api/orders/{id}/status ------------------------------------------------------------


@dataclass(frozen=True)
class StatusChanged:
    id: str
    status: str
    version: int
    updated_at: datetime
    jobs: list[JobRef]


def change_status(
    db: Database,
    principal: Principal,
    order_id: str,
    to_status: str,
    *,
    reason: str | None,
    if_match: frozenset[int] | None = None,
    request_id: str | None = None,
) -> StatusChanged:
    """Staff move an order along its lifecycle; ``if_match`` guards against lost updates."""
    principal.require_role("admin", "ops")
    with db.transaction() as session:
        order = visible_order(session, principal, order_id)
        if if_match is not None and order.version not in if_match:
            raise PreconditionFailed(
                f"The order is at version {order.version}.",
                details=[{"orderId": order.id, "currentVersion": order.version, "ifMatch": sorted(if_match)}],
            )
        if to_status == lifecycle.PROCESSING and order.status == lifecycle.PENDING_PAYMENT:
            record_offline_payment(session, order, principal=principal, reason=reason)
        change = transition_order(session, order, to_status, reason=reason, principal=principal, request_id=request_id)
        return StatusChanged(order.id, order.status, order.version, order.updated_at, change.jobs)
