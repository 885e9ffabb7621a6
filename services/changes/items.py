"""Cancelling and verifying order items (``POST /api/orders/items``): all or nothing.

Every requested action is checked before anything changes; one bad item id or one action the item
lifecycle forbids refuses the whole request and names each offending item. Cancelling items gives
their stock back, recomputes ``totalAmount``, refunds their share when the order is paid, and
cancelling the last live item cancels the order (through the one transition function).

Repeating an action that already took effect (cancel a cancelled item, verify a verified one) is
a no-op that reports the item's status, so a retried request is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Database, Order, OrderItem
from models.types import utcnow
from services.changes.transitions import (
    bump_version,
    give_back_stock,
    live_total,
    set_item_status,
    transition_order,
    visible_order,
)
from services.events.record import ORDER_ITEM_CHANGED, add_event
from services.jobs.outbox import JobRef
from services.kernel import lifecycle
from services.kernel.errors import InvalidTransition, ItemNotFound, ValidationFailed
from services.kernel.money import to_money
from services.kernel.principal import Principal
from services.ledger.attempts import queue_refund


@dataclass(frozen=True)
class ItemAction:
    item_id: str
    action: str
    reason: str | None = None


@dataclass(frozen=True)
class ItemsChanged:
    order_id: str
    items: list[tuple[str, str]]  # (item id, status) in request order
    order_status: str
    total_amount: Decimal
    version: int
    jobs: list[JobRef]


def check_item_actions(order: Order, items: dict[str, OrderItem], actions: list[ItemAction]) -> None:
    """Refuse actions naming an item twice, an item not of the order, or a step its lifecycle (or
    a closed order) forbids; every refusal names its items. Pure: no database."""
    seen: dict[str, int] = {}
    duplicates = []
    for index, action in enumerate(actions):
        if action.item_id in seen:
            duplicates.append(
                {"field": f"items[{index}].itemId", "itemId": action.item_id, "message": "item named twice"}
            )
        seen.setdefault(action.item_id, index)
    if duplicates:
        raise ValidationFailed("Each item may appear once per request.", details=duplicates)
    missing = [
        {"field": f"items[{index}].itemId", "itemId": action.item_id, "orderId": order.id}
        for index, action in enumerate(actions)
        if action.item_id not in items
    ]
    if missing:
        raise ItemNotFound(details=missing)
    refused = []
    order_open = order.status in lifecycle.ITEMS_OPEN_STATUSES
    for index, action in enumerate(actions):
        item = items[action.item_id]
        target = lifecycle.ITEM_ACTIONS[action.action]
        if order_open and (item.status == target or lifecycle.item_transition_allowed(item.status, target)):
            continue
        refused.append(
            {
                "field": f"items[{index}].action",
                "itemId": item.id,
                "action": action.action,
                "currentStatus": item.status,
                "orderStatus": order.status,
                "allowedTransitions": list(lifecycle.allowed_item_transitions(item.status)) if order_open else [],
            }
        )
    if refused:
        message = (
            "An item's lifecycle does not allow this action."
            if order_open
            else f"Items of an order in status '{order.status}' can no longer change."
        )
        raise InvalidTransition(message, details=refused)


def act_on_items(
    db: Database,
    principal: Principal,
    order_id: str,
    actions: list[ItemAction],
    *,
    request_id: str | None = None,
) -> ItemsChanged:
    """Apply every action or none; customers act on their own orders' items."""
    with db.transaction() as session:
        order = visible_order(session, principal, order_id)
        all_items = list(
            session.scalars(select(OrderItem).where(OrderItem.order_id == order.id).order_by(OrderItem.position))
        )
        by_id = {item.id: item for item in all_items}
        check_item_actions(order, by_id, actions)

        changes: dict[str, list[OrderItem]] = {lifecycle.ITEM_CANCELLED: [], lifecycle.ITEM_VERIFIED: []}
        for action in actions:
            item = by_id[action.item_id]
            target = lifecycle.ITEM_ACTIONS[action.action]
            if item.status != target:
                changes[target].append(item)
        jobs = _apply(session, order, all_items, changes, actions, principal, request_id)
        return ItemsChanged(
            order_id=order.id,
            items=[(action.item_id, by_id[action.item_id].status) for action in actions],
            order_status=order.status,
            total_amount=order.total_amount,
            version=order.version,
            jobs=jobs,
        )


def _apply(
    session: Session,
    order: Order,
    all_items: list[OrderItem],
    changes: dict[str, list[OrderItem]],
    actions: list[ItemAction],
    principal: Principal,
    request_id: str | None,
) -> list[JobRef]:
    cancelled, verified = changes[lifecycle.ITEM_CANCELLED], changes[lifecycle.ITEM_VERIFIED]
    if not cancelled and not verified:
        return []
    jobs: list[JobRef] = []
    reasons = sorted({a.reason for a in actions if a.reason and a.action == "cancel"})
    reason = "; ".join(reasons) or None
    if cancelled:
        give_back_stock(session, order, cancelled)
        set_item_status(session, cancelled, lifecycle.ITEM_CANCELLED)
        share = to_money(sum((item.price * item.quantity for item in cancelled), Decimal(0)))
        refund = queue_refund(session, order, share, reason=reason, principal=principal, request_id=request_id)
        if refund is not None:
            jobs.append(refund)
    if verified:
        set_item_status(session, verified, lifecycle.ITEM_VERIFIED)
    bump_version(session, order, utcnow(), total_amount=live_total(all_items))
    add_event(
        session.connection(),
        ORDER_ITEM_CHANGED,
        order_id=order.id,
        customer_id=order.customer_id,
        data={
            "orderId": order.id,
            "items": [{"itemId": item.id, "status": item.status} for item in [*cancelled, *verified]],
            "reason": reason,
            "totalAmount": order.total_amount,
            "version": order.version,
        },
    )
    if cancelled and not any(item.status in lifecycle.LIVE_ITEM_STATUSES for item in all_items):
        change = transition_order(
            session,
            order,
            lifecycle.CANCELLED,
            reason=f"all items cancelled{': ' + reason if reason else ''}",
            principal=principal,
            request_id=request_id,
        )
        jobs.extend(change.jobs)
    return jobs
