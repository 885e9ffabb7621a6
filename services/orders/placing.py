"""Placing orders.

Placing an order is one transaction: validate offers and prices, reserve stock with one
conditional UPDATE per offer (the database decides, so concurrent buyers can never oversell),
write the order, its items, the first history row and the checkout job. The checkout message is
sent by the caller after commit.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy import BindParameter, Connection, Insert, Table, bindparam, insert, select, update

from models import Database, Job, Offer, Order, OrderItem, StatusHistory
from models.ids import new_id
from models.types import utcnow
from services.events.record import EVENT_COLUMNS, EVENTS, INSERT_EVENT, ORDER_CREATED, event_row
from services.jobs.kinds import CHECKOUT
from services.jobs.outbox import INSERT_JOB as _INSERT_JOB
from services.jobs.outbox import JOB_ROW_COLUMNS, JobRef, job_row
from services.kernel import lifecycle
from services.kernel.errors import (
    Forbidden,
    InsufficientInventory,
    OfferNotFound,
    PriceMismatch,
    ValidationFailed,
)
from services.kernel.money import MAX_AMOUNT, to_money
from services.kernel.principal import Principal
from services.orders.views import ItemView, OrderView


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
class PlacedOrder:
    order: OrderView
    checkout_job: JobRef


# Placement's statements, built once (SQLAlchemy Core on the tables; no ORM unit of work).
_OFFERS, _ORDERS, _ITEMS, _HISTORY = Offer.__table__, Order.__table__, OrderItem.__table__, StatusHistory.__table__
_JOBS = Job.__table__
_READ_OFFERS = select(_OFFERS.c.id, _OFFERS.c.price, _OFFERS.c.currency).where(
    _OFFERS.c.id.in_(bindparam("offer_ids", expanding=True))
)
_INSERT_ORDER = insert(_ORDERS)
_INSERT_ITEMS = insert(_ITEMS)
_INSERT_HISTORY = insert(_HISTORY)
# The hot row: one conditional UPDATE per offer; the database decides, so no buyer can oversell,
# and the price and currency the order was priced at must still be the offer's.
_RESERVE = (
    update(_OFFERS)
    .where(
        _OFFERS.c.id == bindparam("offer"),
        _OFFERS.c.price == bindparam("expected_price", type_=_OFFERS.c.price.type),
        _OFFERS.c.currency == bindparam("expected_currency"),
        _OFFERS.c.stock_available >= bindparam("wanted"),
    )
    .values(
        stock_available=_OFFERS.c.stock_available - bindparam("wanted"),
        stock_reserved=_OFFERS.c.stock_reserved + bindparam("wanted"),
        updated_at=bindparam("now", type_=_OFFERS.c.updated_at.type),
    )
)
_READ_STOCK = select(_OFFERS.c.stock_available).where(_OFFERS.c.id == bindparam("offer"))
MAX_ITEMS = 100  # the create schema's limit: one combined statement is built per item count


def _bound(table: Table, prefix: str, names: list[str]) -> dict[str, BindParameter[Any]]:
    return {name: bindparam(f"{prefix}{name}", type_=table.c[name].type) for name in names}


_ORDER_COLUMNS = [column.name for column in _ORDERS.columns]
_ITEM_COLUMNS = [column.name for column in _ITEMS.columns]
_HISTORY_COLUMNS = [column.name for column in _HISTORY.columns if column.name != "id"]
# The columns a new job row sets (the rest start NULL: result, error, started_at, …).
_JOB_COLUMNS = [column.name for column in _JOBS.columns if column.name in JOB_ROW_COLUMNS]


@lru_cache(maxsize=MAX_ITEMS)
def _writes_in_one_statement(item_count: int) -> Insert:
    """PostgreSQL: the order, its items, its first history row and its checkout job in ONE
    statement (data-modifying CTEs), one round trip instead of four. Foreign keys are checked at
    the end of the statement, when the order row exists."""
    new_order = insert(_ORDERS).values(_bound(_ORDERS, "o_", _ORDER_COLUMNS)).cte("new_order")
    # One single-row INSERT per item: a multi-row VALUES is not cacheable by SQLAlchemy, and this
    # statement must compile once per item count, not once per request.
    new_items = [
        insert(_ITEMS).values(_bound(_ITEMS, f"i{index}_", _ITEM_COLUMNS)).cte(f"new_item_{index}")
        for index in range(item_count)
    ]
    new_history = insert(_HISTORY).values(_bound(_HISTORY, "h_", _HISTORY_COLUMNS)).cte("new_history")
    new_event = insert(EVENTS).values(_bound(EVENTS, "e_", EVENT_COLUMNS)).cte("new_event")  # order.created
    return (
        insert(_JOBS).values(_bound(_JOBS, "j_", _JOB_COLUMNS)).add_cte(new_order, *new_items, new_history, new_event)
    )


@lru_cache(maxsize=MAX_ITEMS)
def _placement_in_one_statement(item_count: int) -> Insert:
    """PostgreSQL, an order of one offer: the whole placement as ONE autocommit statement.

    The conditional stock UPDATE is a CTE whose ``RETURNING`` gates every INSERT (each is an
    ``INSERT … SELECT … WHERE EXISTS (reserved)``): when the offer cannot cover the order, no row
    is written at all. One round trip, no BEGIN and no COMMIT of its own, so the hot row is locked
    from the UPDATE to the end of this statement's implicit commit and not a network round trip
    longer. ``RETURNING`` of the job's id says whether anything was placed."""
    reserved = _RESERVE.returning(_OFFERS.c.id).cte("reserved")
    placed = select(reserved.c.id).exists()

    def guarded(table: Table, prefix: str, names: list[str]) -> Insert:
        values = select(*_bound(table, prefix, names).values()).where(placed)
        return insert(table).from_select(names, values)

    new_order = guarded(_ORDERS, "o_", _ORDER_COLUMNS).cte("new_order")
    new_items = [guarded(_ITEMS, f"i{index}_", _ITEM_COLUMNS).cte(f"new_item_{index}") for index in range(item_count)]
    new_history = guarded(_HISTORY, "h_", _HISTORY_COLUMNS).cte("new_history")
    new_event = guarded(EVENTS, "e_", EVENT_COLUMNS).cte("new_event")  # order.created
    job = guarded(_JOBS, "j_", _JOB_COLUMNS)
    return job.add_cte(reserved, new_order, *new_items, new_history, new_event).returning(_JOBS.c.id)


def _rows_params(
    order: dict[str, Any],
    items: list[dict[str, Any]],
    history: dict[str, Any],
    job: dict[str, Any],
    event: dict[str, Any],
) -> dict[str, Any]:
    params = {f"o_{name}": order[name] for name in _ORDER_COLUMNS}
    params.update({f"h_{name}": history[name] for name in _HISTORY_COLUMNS})
    params.update({f"j_{name}": job[name] for name in _JOB_COLUMNS})
    params.update({f"e_{name}": event[name] for name in EVENT_COLUMNS})
    for index, item in enumerate(items):
        params.update({f"i{index}_{name}": item[name] for name in _ITEM_COLUMNS})
    return params


def _place_in_one_statement(
    db: Database,
    rows: tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any], dict[str, Any], dict[str, Any]],
    wanted: list[ItemRequest],
    currency: str,
    now: datetime,
) -> None:
    """Run :func:`_placement_in_one_statement`; when nothing was placed, say why (raised)."""
    order, items, history, job, event = rows
    quantity = sum(item.quantity for item in wanted)
    offer_id = wanted[0].offer_id
    params = _rows_params(order, items, history, job, event)
    params.update(
        offer=offer_id, expected_price=to_money(wanted[0].price), expected_currency=currency, wanted=quantity, now=now
    )
    with db.autocommit() as conn:
        if conn.execute(_placement_in_one_statement(len(items)), params).first() is not None:
            return
        _check_offers(conn, wanted, currency)
        available = conn.execute(_READ_STOCK, {"offer": offer_id}).scalar_one()
    raise InsufficientInventory(details=[{"offerId": offer_id, "requested": quantity, "available": available}])


def _write(
    conn: Connection,
    order: dict[str, Any],
    items: list[dict[str, Any]],
    history: dict[str, Any],
    job: dict[str, Any],
    event: dict[str, Any],
) -> None:
    """Insert the order's rows (no lock is taken on any shared row here)."""
    if conn.dialect.name == "postgresql":
        conn.execute(_writes_in_one_statement(len(items)), _rows_params(order, items, history, job, event))
        return
    conn.execute(_INSERT_ORDER, order)  # SQLite: local calls, and no data-modifying CTEs
    conn.execute(_INSERT_ITEMS, items)
    conn.execute(_INSERT_HISTORY, history)
    conn.execute(_INSERT_JOB, job)
    conn.execute(INSERT_EVENT, event)


def _check_offers(conn: Connection, wanted: list[ItemRequest], currency: str) -> None:
    """Why the order cannot be priced as requested (raised), read when a reservation failed."""
    ids = sorted({item.offer_id for item in wanted})
    offers = {row.id: row for row in conn.execute(_READ_OFFERS, {"offer_ids": ids})}
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


def _reserve(conn: Connection, wanted: list[ItemRequest], currency: str, now: datetime) -> None:
    """One conditional UPDATE per offer, in id order (a fixed lock order avoids deadlocks).

    Run last, right before COMMIT: the offer row's lock is held for as short a time as the
    database allows, so buyers of a hot offer queue on it one statement long, not a transaction.
    The UPDATE checks price and currency too, so the offers are read only when it refuses (to say
    why: unknown offer, another price, or not enough stock).
    """
    totals: dict[str, int] = defaultdict(int)
    prices: dict[str, set[Decimal]] = defaultdict(set)
    for item in wanted:
        totals[item.offer_id] += item.quantity
        prices[item.offer_id].add(to_money(item.price))
    if any(len(asked) > 1 for asked in prices.values()):
        _check_offers(conn, wanted, currency)  # one offer at two prices: at least one is wrong
    for offer_id in sorted(totals):
        quantity = totals[offer_id]
        params = {
            "offer": offer_id,
            "expected_price": next(iter(prices[offer_id])),
            "expected_currency": currency,
            "wanted": quantity,
            "now": now,
        }
        if conn.execute(_RESERVE, params).rowcount == 1:
            continue
        _check_offers(conn, wanted, currency)
        available = conn.execute(_READ_STOCK, {"offer": offer_id}).scalar_one()
        raise InsufficientInventory(details=[{"offerId": offer_id, "requested": quantity, "available": available}])


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


def _created(order: dict[str, Any], items: list[ItemView]) -> dict[str, Any]:
    """``order.created``'s data: the order as placed."""
    return {
        "orderId": order["id"],
        "customerId": order["customer_id"],
        "status": order["status"],
        "totalAmount": order["total_amount"],
        "currency": order["currency"],
        "createdAt": order["created_at"],
        "items": [
            {"itemId": item.id, "offerId": item.offer_id, "quantity": item.quantity, "price": item.price}
            for item in items
        ],
    }


def place_order(
    db: Database,
    principal: Principal,
    command: PlaceOrder,
    policy: PlacementPolicy,
    *,
    request_id: str | None = None,
) -> PlacedOrder:
    """Create an order in ``pending_payment`` with its stock held for the payment window.

    On PostgreSQL, an order of one offer (the common case, and every buyer of a hot one) is ONE
    autocommit statement (:func:`_placement_in_one_statement`). Otherwise one transaction: write
    the order, its items, the first history row and the checkout job, then reserve the stock (the
    conditional UPDATEs last, right before COMMIT).
    """
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
    order_id = new_id("ord")
    order = {
        "id": order_id,
        "customer_id": command.customer_id,
        "status": lifecycle.PENDING_PAYMENT,
        "payment_status": lifecycle.PAYMENT_UNPAID,
        "payment_method": command.payment_method,
        "payment_gateway_id": command.payment_gateway_id,
        "total_amount": total,
        "currency": policy.currency,
        "item_count": len(command.items),
        "version": 1,
        "hold_expires_at": now + policy.payment_window,
        "checkout_url": None,
        "created_at": now,
        "updated_at": now,
    }
    items = [
        ItemView(new_id("item"), item.offer_id, item.quantity, to_money(item.price), lifecycle.ITEM_PENDING)
        for item in command.items
    ]
    history = {
        "order_id": order_id,
        "from_status": None,
        "to_status": lifecycle.PENDING_PAYMENT,
        "reason": "order placed",
        "actor": principal.actor,
        "request_id": request_id,
        "version": 1,
        "created_at": now,
    }
    checkout_args = {
        "orderId": order_id,
        "successUrl": policy.checkout_return.success_url(order_id),
        "cancelUrl": policy.checkout_return.cancel_url(order_id),
    }
    item_rows = [
        {
            "id": item.id,
            "order_id": order_id,
            "position": position,
            "offer_id": item.offer_id,
            "quantity": item.quantity,
            "price": item.price,
            "status": item.status,
        }
        for position, item in enumerate(items)
    ]
    job = job_row(
        CHECKOUT,
        args=checkout_args,
        owner=principal,
        order_id=order_id,
        request_id=request_id,
        customer_id=command.customer_id,
        now=now,
    )
    event = event_row(ORDER_CREATED, order_id=order_id, customer_id=command.customer_id, data=_created(order, items))
    one_offer = len({item.offer_id for item in command.items}) == 1
    one_price = len({to_money(item.price) for item in command.items}) == 1
    if db.write_engine.dialect.name == "postgresql" and one_offer and one_price:
        _place_in_one_statement(db, (order, item_rows, history, job, event), command.items, policy.currency, now)
    else:
        with db.connection() as conn:
            _write(conn, order, item_rows, history, job, event)
            _reserve(conn, command.items, policy.currency, now)
    view = OrderView(
        id=order_id,
        customer_id=command.customer_id,
        status=order["status"],
        payment_status=order["payment_status"],
        payment_method=command.payment_method,
        payment_gateway_id=command.payment_gateway_id,
        total_amount=total,
        currency=policy.currency,
        version=1,
        hold_expires_at=order["hold_expires_at"],
        created_at=now,
        updated_at=now,
        items=items,
    )
    return PlacedOrder(order=view, checkout_job=JobRef.of(CHECKOUT, job["id"]))
