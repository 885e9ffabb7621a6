"""Offers: what can be bought, at what price, and how much stock is free or held."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base
from models.types import Money, UTCDateTime, utcnow


class Offer(Base):
    __tablename__ = "offers"
    __table_args__ = (
        # Belt and braces: the reserve UPDATE is conditional, and the database refuses a negative.
        CheckConstraint("stock_available >= 0", name="stock_available_nonnegative"),
        CheckConstraint("stock_reserved >= 0", name="stock_reserved_nonnegative"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    price: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    stock_available: Mapped[int] = mapped_column(Integer, default=0)
    stock_reserved: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
