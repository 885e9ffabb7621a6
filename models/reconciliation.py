"""Settlement reports: one per (day, gateway), comparing the gateway's ledger with our payments."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base
from models.types import UTCDateTime, utcnow


class ReconciliationReport(Base):
    """What the settlement job found for one gateway's day of captures and refunds.

    The lists hold ``{"id", "kind", "amount", ...}`` objects (amounts as decimal strings);
    ``manual`` sums the payments staff recorded outside the gateway (``{"count", "total",
    "refundCount", "refundTotal"}``), which the gateway cannot know of. Settling the same day
    again replaces the row.
    """

    __tablename__ = "reconciliation_reports"
    __table_args__ = (UniqueConstraint("date", "gateway_id", name="uq_reconciliation_reports_date_gateway"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    date: Mapped[date] = mapped_column(Date, index=True)
    gateway_id: Mapped[str] = mapped_column(String(64))
    matched_count: Mapped[int] = mapped_column(Integer)
    missing_in_gateway: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    missing_in_db: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    amount_mismatches: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    manual: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
