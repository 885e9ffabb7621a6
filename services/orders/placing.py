"""Placing and reading orders.

Placing an order is one transaction: validate offers and prices, reserve stock with one
conditional UPDATE per offer (the database decides, so concurrent buyers can never oversell),
write the order, its items, the first history row and the checkout job. The checkout message is
sent by the caller after commit.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from models import Database, Offer, Order, OrderItem, StatusHistory
from models.ids import new_id
from models.types import utcnow
from services.jobs.kinds import CHECKOUT
from services.jobs.outbox import JobRef, add_job
from services.kernel import lifecycle
from services.kernel.errors import (
    Forbidden,
    InsufficientInventory,
    OfferNotFound,
    OrderNotFound,
    PriceMismatch,
    ValidationFailed,
)
from services.kernel.money import MAX_AMOUNT, to_money
from services.kernel.principal import Principal


@dataclass(frozen=True)
class ItemRequest:
    offer_id: str
    quantity: int
    price: Decimal


@dataclass(frozen=True)
class PlaceOrder:
    customer_id: str
    items: list[ItemRequest]
    payment_method: str
    payment_gateway_id: str


class CheckoutReturn(Protocol):
    """Where the gateway sends the customer back: the API's routes (``api.links.PublicLinks``),
    written into the checkout job so that no route path lives in ``services`` or ``tasks``."""

    def success_url(self, order_id: str) -> str: ...

    def cancel_url(self, order_id: str) -> str: ...


@dataclass(frozen=True)
class PlacementPolicy:
    """Deployment settings the use case needs (kept out of ``config`` imports for testability)."""

    currency: str
    payment_window: timedelta
    gateways: frozenset[str]
    checkout_return: CheckoutReturn


@dataclass(frozen=True)
class ItemView:
    id: str
    offer_id: str
    quantity: int
    price: Decimal
    status: str


@dataclass(frozen=True)
class HistoryView:
    from_status: str | None
    to_status: str
    reason: str | None
    actor: str
    request_id: str | None
    version: int
    created_at: datetime


@dataclass(frozen=True)
class OrderView:
    id: str
    customer_id: str
    status: str
    payment_status: str
    payment_method: str
    payment_gateway_id: str
    total_amount: Decimal
    currency: str
    version: int
    hold_expires_at: datetime
    created_at: datetime
    updated_at: datetime
    items: list[ItemView]
    history: list[HistoryView] | None = field(default=None)


@dataclass(frozen=True)
class PlacedOrder:
    order: OrderView
    checkout_job: JobRef


def _item_view(item: OrderItem) -> ItemView:
    return ItemView(item.id, item.offer_id, item.quantity, item.price, item.status)


def order_view(order: Order, items: list[OrderItem], history: list[StatusHistory] | None = None) -> OrderView:
    return OrderView(
        id=order.id,
        customer_id=order.customer_id,
        status=order.status,
        payment_status=order.payment_status,
        payment_method=order.payment_method,
        payment_gateway_id=order.payment_gateway_id,
        total_amount=order.total_amount,
        currency=order.currency,
        version=order.version,
        hold_expires_at=order.hold_expires_at,
        created_at=order.created_at,
        updated_at=order.updated_at,
        items=[_item_view(item) for item in items],
        history=None
        if history is None
        else [
            HistoryView(h.from_status, h.to_status, h.reason, h.actor, h.request_id, h.version, h.created_at)
            for h in history
        ],
    )


def _check_offers(session: Session, wanted: list[ItemRequest], currency: str) -> dict[str, Offer]:
    ids = sorted({item.offer_id for item in wanted})
    offers = {offer.id: offer for offer in session.scalars(select(Offer).where(Offer.id.in_(ids)))}
    missing = [
        {"field": f"items[{index}].offerId", "offerId": item.offer_id}
        for index, item in enumerate(wanted)
        if item.offer_id not in offers
    ]
    if missing:
        raise OfferNotFound(details=missing)
    mismatched = [
        {
            "field": f"items[{index}].price",
            "offerId": item.offer_id,
            "price": item.price,
            "currentPrice": offers[item.offer_id].price,
        }
        for index, item in enumerate(wanted)
        if to_money(item.price) != offers[item.offer_id].price or offers[item.offer_id].currency != currency
    ]
    if mismatched:
        raise PriceMismatch(details=mismatched)
    return offers


def _reserve(session: Session, wanted: list[ItemRequest], offers: dict[str, Offer]) -> None:
    """One conditional UPDATE per offer, in id order (a fixed lock order avoids deadlocks)."""
    totals: dict[str, int] = defaultdict(int)
    for item in wanted:
        totals[item.offer_id] += item.quantity
    now = utcnow()
    for offer_id in sorted(totals):
        quantity = totals[offer_id]
        result = session.execute(
            update(Offer)
            .where(
                Offer.id == offer_id,
                Offer.price == offers[offer_id].price,
                Offer.stock_available >= quantity,
            )
            .values(
                stock_available=Offer.stock_available - quantity,
                stock_reserved=Offer.stock_reserved + quantity,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            current = session.execute(select(Offer.stock_available, Offer.price).where(Offer.id == offer_id)).one()
            if current.price != offers[offer_id].price:
                raise PriceMismatch(details=[{"offerId": offer_id, "currentPrice": current.price}])
            raise InsufficientInventory(
                details=[{"offerId": offer_id, "requested": quantity, "available": current.stock_available}]
            )


def _order_total(items: list[ItemRequest]) -> Decimal:
    """The server-computed total, refused before anything is read or written when it would not
    fit the money column (each price fits on its own; 10,000 × 9,999,999.99 does not)."""
    total = to_money(sum((to_money(item.price) * item.quantity for item in items), Decimal(0)))
    if total > MAX_AMOUNT:
        raise ValidationFailed(
            "The order total is too large.",
            details=[{"field": "items", "message": f"the order total {total} exceeds {MAX_AMOUNT}", "total": total}],
        )
    return total


def place_order(
    db: Database,
    principal: Principal,
    command: PlaceOrder,
    policy: PlacementPolicy,
    *,
    request_id: str | None = None,
) -> PlacedOrder:
    """Create an order in ``pending_payment`` with its stock held for the payment window."""
    if not principal.can_see_customer(command.customer_id):
        raise Forbidden(
            "A customer key may only place orders for its own customer.",
            details=[{"field": "customerId", "customerId": command.customer_id}],
        )
    if command.payment_gateway_id not in policy.gateways:
        raise ValidationFailed(
            details=[
                {"field": "paymentGatewayId", "message": f"unknown gateway; configured: {sorted(policy.gateways)}"}
            ]
        )
    total = _order_total(command.items)
    now = utcnow()
    with db.transaction() as session:
        offers = _check_offers(session, command.items, policy.currency)
        _reserve(session, command.items, offers)
        order = Order(
            id=new_id("ord"),
            customer_id=command.customer_id,
            status=lifecycle.PENDING_PAYMENT,
            payment_status=lifecycle.PAYMENT_UNPAID,
            payment_method=command.payment_method,
            payment_gateway_id=command.payment_gateway_id,
            total_amount=total,
            currency=policy.currency,
            item_count=len(command.items),
            version=1,
            hold_expires_at=now + policy.payment_window,
            created_at=now,
            updated_at=now,
        )
        items = [
            OrderItem(
                id=new_id("item"),
                order_id=order.id,
                position=position,
                offer_id=item.offer_id,
                quantity=item.quantity,
                price=to_money(item.price),
                status=lifecycle.ITEM_PENDING,
            )
            for position, item in enumerate(command.items)
        ]
        history = StatusHistory(
            order_id=order.id,
            from_status=None,
            to_status=lifecycle.PENDING_PAYMENT,
            reason="order placed",
            actor=principal.actor,
            request_id=request_id,
            version=1,
            created_at=now,
        )
        session.add_all([order, *items, history])
        job = add_job(
            session,
            CHECKOUT,
            args={
                "orderId": order.id,
                "successUrl": policy.checkout_return.success_url(order.id),
                "cancelUrl": policy.checkout_return.cancel_url(order.id),
            },
            owner=principal,
            order_id=order.id,
            request_id=request_id,
            customer_id=order.customer_id,
        )
        return PlacedOrder(order=order_view(order, items), checkout_job=job)


def get_order(db: Database, principal: Principal, order_id: str, *, with_history: bool = False) -> OrderView:
    """An order the caller may see, with items (and history when asked)."""
    with db.reader() as session:
        options = [selectinload(Order.items)]
        order = session.scalar(select(Order).where(Order.id == order_id).options(*options))
        if order is None or not principal.can_see_customer(order.customer_id):
            raise OrderNotFound(details=[{"orderId": order_id}])
        history = None
        if with_history:
            history = list(
                session.scalars(
                    select(StatusHistory).where(StatusHistory.order_id == order_id).order_by(StatusHistory.id)
                )
            )
        return order_view(order, list(order.items), history)
