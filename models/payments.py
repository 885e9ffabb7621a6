"""Payments: every attempt at a gateway, the webhook events received, and the sandbox's ledger."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base
from models.types import Money, UTCDateTime, utcnow


class Payment(Base):
    """One attempt of one action (process, authorize, capture, void, refund, checkout) at a gateway.

    ``idempotency_key`` is sent with every gateway call of the attempt, so a redelivered task or a
    retry reaches the same charge. ``state`` is ``pending`` until the gateway's answer is known
    (a timeout leaves it pending for reconciliation), then ``succeeded`` or ``failed``.
    """

    __tablename__ = "payments"
    __table_args__ = (UniqueConstraint("gateway_id", "checkout_session_id", name="gateway_checkout_session"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    gateway_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))
    method: Mapped[str | None] = mapped_column(String(32), nullable=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    state: Mapped[str] = mapped_column(String(16), index=True)
    gateway_transaction_id: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    checkout_session_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    parent_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    token: Mapped[str | None] = mapped_column(String(255), nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookEvent(Base):
    """A verified gateway event, stored before it is applied: each (gateway, event id) once."""

    __tablename__ = "webhook_events"
    __table_args__ = (UniqueConstraint("gateway_id", "event_id", name="gateway_event"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    gateway_id: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    # What the event names, so a payment or order that appears later finds its waiting events.
    order_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    checkout_session_id: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SandboxLedgerEntry(Base):
    """The sandbox gateway's own books (charges, refunds, checkout sessions), shared by processes."""

    __tablename__ = "sandbox_ledger"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    gateway_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(24), index=True)
    status: Mapped[str] = mapped_column(String(24))
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True, unique=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    token: Mapped[str | None] = mapped_column(String(255), nullable=True)
    parent_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    reference: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    decline_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
