"""The checkout step queued with every new order.

For now it confirms the order is still awaiting payment and reports where the client pays; the
gateway's hosted checkout session is opened here once the payments work lands.
"""

from __future__ import annotations

from typing import Any

from models import Database, Order
from services.errors import OrderNotFound


def open_checkout(db: Database, args: dict[str, Any]) -> dict[str, Any]:
    order_id = args["orderId"]
    with db.reader() as session:
        order = session.get(Order, order_id)
        if order is None:
            raise OrderNotFound(details=[{"orderId": order_id}])
        return {"orderId": order.id, "status": order.status, "checkoutUrl": order.checkout_url}
