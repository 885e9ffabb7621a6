"""Reading one order: the order and its items in one statement on the autocommit read engine
(no BEGIN/ROLLBACK, no ORM identity map), its history in a second one when asked for."""

from __future__ import annotations

from sqlalchemy import bindparam, select

from models import Database, Order, OrderItem, StatusHistory
from services.kernel.errors import OrderNotFound
from services.kernel.principal import Principal
from services.orders.views import HistoryView, ItemView, OrderView

_ORDERS, _ITEMS, _HISTORY = Order.__table__, OrderItem.__table__, StatusHistory.__table__
_ORDER_COLUMNS = [
    _ORDERS.c[name]
    for name in (
        "id",
        "customer_id",
        "status",
        "payment_status",
        "payment_method",
        "payment_gateway_id",
        "total_amount",
        "currency",
        "version",
        "hold_expires_at",
        "created_at",
        "updated_at",
    )
]
_ITEM_COLUMNS = [
    _ITEMS.c.id.label("item_id"),
    _ITEMS.c.offer_id.label("item_offer_id"),
    _ITEMS.c.quantity.label("item_quantity"),
    _ITEMS.c.price.label("item_price"),
    _ITEMS.c.status.label("item_status"),
]
_ORDER_WITH_ITEMS = (
    select(*_ORDER_COLUMNS, *_ITEM_COLUMNS)
    .select_from(_ORDERS.outerjoin(_ITEMS, _ITEMS.c.order_id == _ORDERS.c.id))
    .where(_ORDERS.c.id == bindparam("order_id"))
    .order_by(_ITEMS.c.position)
)
_HISTORY_OF = (
    select(
        _HISTORY.c.from_status,
        _HISTORY.c.to_status,
        _HISTORY.c.reason,
        _HISTORY.c.actor,
        _HISTORY.c.request_id,
        _HISTORY.c.version,
        _HISTORY.c.created_at,
    )
    .where(_HISTORY.c.order_id == bindparam("order_id"))
    .order_by(_HISTORY.c.id)
)


def get_order(db: Database, principal: Principal, order_id: str, *, with_history: bool = False) -> OrderView:
    """An order the caller may see, with items (and history when asked)."""
    with db.read_engine.connect() as conn:
        rows = conn.execute(_ORDER_WITH_ITEMS, {"order_id": order_id}).all()
        if not rows or not principal.can_see_customer(rows[0].customer_id):
            raise OrderNotFound(details=[{"orderId": order_id}])
        history = None
        if with_history:
            history = [HistoryView(*row) for row in conn.execute(_HISTORY_OF, {"order_id": order_id})]
    first = rows[0]
    items = [
        ItemView(row.item_id, row.item_offer_id, row.item_quantity, row.item_price, row.item_status)
        for row in rows
        if row.item_id is not None
    ]
    return OrderView(
        id=first.id,
        customer_id=first.customer_id,
        status=first.status,
        payment_status=first.payment_status,
        payment_method=first.payment_method,
        payment_gateway_id=first.payment_gateway_id,
        total_amount=first.total_amount,
        currency=first.currency,
        version=first.version,
        hold_expires_at=first.hold_expires_at,
        created_at=first.created_at,
        updated_at=first.updated_at,
        items=items,
        history=history,
    )
