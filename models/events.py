"""Order and task events, the endpoints subscribed to them, and each delivery to an endpoint.

An event row is written in the same transaction as the change it tells of (``seq`` orders the
inserts). After commit the dispatcher gives it its ``position`` (the order clients page in, assigned
by one dispatcher at a time, so a page never skips an event that committed late) and a delivery row
per subscribed endpoint; a delivery task per row then POSTs it, retrying with backoff.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base
from models.types import UTCDateTime, utcnow

# SQLite assigns row ids only to an ``INTEGER PRIMARY KEY``; PostgreSQL gets a 64-bit identity.
Sequence64 = BigInteger().with_variant(Integer(), "sqlite")


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_customer_id_position", "customer_id", "position"),
        # The dispatcher's next batch: the few events not positioned yet, without scanning the rest.
        Index(
            "ix_events_undispatched",
            "seq",
            postgresql_where=text("position IS NULL"),
            sqlite_where=text("position IS NULL"),
        ),
    )

    seq: Mapped[int] = mapped_column(Sequence64, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)  # evt_…, public and stable
    type: Mapped[str] = mapped_column(String(40))
    order_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    # Whose event it is: a customer key sees (and may subscribe to) its own customer's events only.
    customer_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The event's ``data`` object as JSON text, encoded once (exact decimals) and sent as it is.
    data: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set by the dispatcher after commit (NULL: not dispatched yet); the order of GET /api/events.
    position: Mapped[int | None] = mapped_column(BigInteger, nullable=True, unique=True)


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # we_…
    url: Mapped[str] = mapped_column(String(2048))
    event_types: Mapped[list[str]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(String(100))  # whsec_…: shown once, kept to sign with
    description: Mapped[str | None] = mapped_column(String(200), nullable=True)
    owner_key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # NULL: a staff endpoint (every customer's events); else only this customer's.
    customer_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(16))  # enabled | failing | deleted
    # One delivery in flight per endpoint: a claim moves this forward (a lease), a success brings
    # it back to now, a failure to the retry time. A hanging receiver thus holds one worker slot.
    available_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_state_next_attempt_at", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint_id_order_id_position", "endpoint_id", "order_id", "position"),
        Index("ix_webhook_deliveries_endpoint_id_id", "endpoint_id", "id"),
        Index("ix_webhook_deliveries_event_seq", "event_seq"),  # retention deletes by event
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # whd_…
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id"))
    event_seq: Mapped[int] = mapped_column(ForeignKey("events.seq"))
    event_id: Mapped[str] = mapped_column(String(40))  # evt_…, also the Webhook-Id of every attempt
    order_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    position: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16))  # pending | succeeded | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Retries stop after this (about a day after the event, or after a resend).
    give_up_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    last_duration_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
