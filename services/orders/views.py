"""What the order use cases answer: plain values, built from rows (no ORM objects leave a use case)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


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
