"""Orders, their items and their status history."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base
from models.types import Money, UTCDateTime, utcnow


class Order(Base):
    __tablename__ = "orders"
    # Composite indexes ending in ``id`` serve the list's filters *and* its keyset orderings
    # (``ORDER BY x, id`` with ``(x, id) > (:x, :id)``), forwards or backwards (migration 0003).
    __table_args__ = (
        Index("ix_orders_status_created_at_id", "status", "created_at", "id"),
        Index("ix_orders_customer_id_created_at_id", "customer_id", "created_at", "id"),
        Index("ix_orders_created_at_id", "created_at", "id"),
        Index("ix_orders_total_amount_id", "total_amount", "id"),
        # The unpaid-orders beat job: pending_payment orders past their window (migration 0006).
        Index("ix_orders_status_hold_expires_at", "status", "hold_expires_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(32), index=True)
    payment_status: Mapped[str] = mapped_column(String(32))
    payment_method: Mapped[str] = mapped_column(String(32))
    payment_gateway_id: Mapped[str] = mapped_column(String(64))
    total_amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    item_count: Mapped[int] = mapped_column(Integer)
    # Optimistic-concurrency counter: every change bumps it; exposed as the ETag.
    version: Mapped[int] = mapped_column(Integer, default=1)
    hold_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    checkout_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    items: Mapped[list[OrderItem]] = relationship(back_populates="order", order_by="OrderItem.position", lazy="raise")


class OrderItem(Base):
    __tablename__ = "order_items"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    offer_id: Mapped[str] = mapped_column(String(64), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    price: Mapped[Decimal] = mapped_column(Money)
    status: Mapped[str] = mapped_column(String(32))

    order: Mapped[Order] = relationship(back_populates="items", lazy="raise")


class StatusHistory(Base):
    """One row per order status change: who changed it, why, and from which request."""

    __tablename__ = "order_status_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    to_status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    actor: Mapped[str] = mapped_column(String(100))
    request_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
