"""Known order rows written straight to the database, and their plain-Python mirror.

Query tests insert a data set under a customer-id prefix of their own, then compare what the API
answers with what Python computes over the same :class:`Row` objects.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from models import Database, Order, OrderItem


@dataclass
class ItemRow:
    id: str
    offer_id: str
    quantity: int
    price: Decimal
    status: str


@dataclass
class Row:
    id: str
    customer_id: str
    status: str
    payment_status: str
    payment_method: str
    payment_gateway_id: str
    total_amount: Decimal
    currency: str
    created_at: datetime
    updated_at: datetime
    items: list[ItemRow] = field(default_factory=list)

    @property
    def item_count(self) -> int:
        return len(self.items)

    def api(self, name: str) -> object:
        """The value under its API field name (for sorting like the service does)."""
        return {
            "id": self.id,
            "customerId": self.customer_id,
            "status": self.status,
            "paymentStatus": self.payment_status,
            "paymentMethod": self.payment_method,
            "paymentGatewayId": self.payment_gateway_id,
            "totalAmount": self.total_amount,
            "currency": self.currency,
            "itemCount": self.item_count,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }[name]


def prefix() -> str:
    """A fresh lower-case customer-id prefix, e.g. ``q3f9a1c_``."""
    return f"q{secrets.token_hex(4)}_"


def insert_rows(db: Database, rows: list[Row]) -> None:
    with db.transaction() as session:
        for row in rows:
            session.add(
                Order(
                    id=row.id,
                    customer_id=row.customer_id,
                    status=row.status,
                    payment_status=row.payment_status,
                    payment_method=row.payment_method,
                    payment_gateway_id=row.payment_gateway_id,
                    total_amount=row.total_amount,
                    currency=row.currency,
                    item_count=row.item_count,
                    version=1,
                    hold_expires_at=row.created_at + timedelta(minutes=30),
                    created_at=row.created_at,
                    updated_at=row.updated_at,
                )
            )
        session.flush()
        for row in rows:
            for position, item in enumerate(row.items):
                session.add(
                    OrderItem(
                        id=item.id,
                        order_id=row.id,
                        position=position,
                        offer_id=item.offer_id,
                        quantity=item.quantity,
                        price=item.price,
                        status=item.status,
                    )
                )
