"""Many orders in a few statements, for the bulk-cancel tests and the benchmark.

Orders are written as if placed and moved along the lifecycle: one item each on one offer, the
offer's counters adjusted the way the lifecycle would have left them (held while
``pending_payment``, committed from ``processing`` on, nothing for ``cancelled``).
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import insert, update

from models import Database, Offer, Order, OrderItem, StatusHistory
from models.ids import new_id
from models.types import utcnow
from services.kernel import lifecycle

ITEM_STATUS_FOR = {
    lifecycle.PENDING_PAYMENT: lifecycle.ITEM_PENDING,
    lifecycle.PROCESSING: lifecycle.ITEM_PENDING,
    lifecycle.SHIPPED: lifecycle.ITEM_VERIFIED,
    lifecycle.COMPLETED: lifecycle.ITEM_FULFILLED,
    lifecycle.REFUNDED: lifecycle.ITEM_FULFILLED,
    lifecycle.CANCELLED: lifecycle.ITEM_CANCELLED,
}


def seed_orders(
    db: Database,
    *,
    offer_id: str,
    price: Decimal,
    statuses: list[str],
    customer_id: str,
    quantity: int = 1,
    payment_status: dict[str, str] | None = None,
    chunk: int = 2000,
) -> list[str]:
    """Insert one order per entry of ``statuses``; returns their ids in the same order."""
    now = utcnow()
    payment_status = payment_status or {}
    orders, items, history = [], [], []
    for status in statuses:
        order_id = new_id("ord")
        orders.append(
            {
                "id": order_id,
                "customer_id": customer_id,
                "status": status,
                "payment_status": payment_status.get(status, lifecycle.PAYMENT_UNPAID),
                "payment_method": "credit_card",
                "payment_gateway_id": "sandbox",
                "total_amount": Decimal(0) if status == lifecycle.CANCELLED else price * quantity,
                "currency": "USD",
                "item_count": 1,
                "version": 1,
                "hold_expires_at": now + timedelta(minutes=30),
                "checkout_url": None,
                "created_at": now,
                "updated_at": now,
            }
        )
        items.append(
            {
                "id": new_id("item"),
                "order_id": order_id,
                "position": 0,
                "offer_id": offer_id,
                "quantity": quantity,
                "price": price,
                "status": ITEM_STATUS_FOR[status],
            }
        )
        history.append(
            {
                "order_id": order_id,
                "from_status": None,
                "to_status": status,
                "reason": "seeded",
                "actor": "test:seed",
                "request_id": None,
                "version": 1,
                "created_at": now,
            }
        )
    counts = Counter(statuses)
    held = counts[lifecycle.PENDING_PAYMENT] * quantity
    taken = sum(n for status, n in counts.items() if status != lifecycle.CANCELLED) * quantity
    with db.transaction() as session:
        result = session.execute(
            update(Offer)
            .where(Offer.id == offer_id, Offer.stock_available >= taken)
            .values(stock_available=Offer.stock_available - taken, stock_reserved=Offer.stock_reserved + held)
        )
        assert result.rowcount == 1, "the offer has too little stock for the seed"
        for rows, table in ((orders, Order), (items, OrderItem), (history, StatusHistory)):
            for start in range(0, len(rows), chunk):
                session.execute(insert(table), rows[start : start + chunk])
    return [order["id"] for order in orders]
