"""The dispatcher: after commit, give new events their position and a delivery per subscriber.

Runs outside every request (a task nudged after commits, and the beat sweep, so an event whose
nudge was lost is dispatched on the next sweep). One dispatcher at a time assigns positions (a
PostgreSQL advisory lock; SQLite's write lock): an event that committed after a later-inserted one
gets a higher position, so a client paging ``GET /api/events?after=`` never skips one. Events of
one order commit one after the other (the order row is locked), so their positions keep that order.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, select, text, tuple_, update

from models import Database, Event, WebhookDelivery, WebhookEndpoint
from models.ids import new_id
from models.types import utcnow
from services.webhooks.endpoints import ACTIVE, PENDING

_LOCK_KEY = 0x0E7E_4714  # pg_advisory_xact_lock key of the dispatcher
EVENTS, DELIVERIES, ENDPOINTS = Event.__table__, WebhookDelivery.__table__, WebhookEndpoint.__table__


def _position_next_batch() -> Any:
    """``UPDATE events SET position = top + n FROM (the next undispatched events, numbered in seq
    order) RETURNING …``: one statement picks and positions a batch."""
    numbered = (
        select(EVENTS.c.seq, func.row_number().over(order_by=EVENTS.c.seq).label("n"))
        .where(EVENTS.c.position.is_(None))
        .order_by(EVENTS.c.seq)
        .limit(bindparam("batch"))
        .subquery("numbered")
    )
    top = select(func.coalesce(func.max(EVENTS.c.position), 0)).scalar_subquery()
    return (
        update(EVENTS)
        .where(EVENTS.c.seq == numbered.c.seq)
        .values(position=top + numbered.c.n)
        .returning(
            EVENTS.c.seq,
            EVENTS.c.id,
            EVENTS.c.type,
            EVENTS.c.order_id,
            EVENTS.c.customer_id,
            EVENTS.c.created_at,
            EVENTS.c.position,
        )
    )


_POSITION_NEXT_BATCH = _position_next_batch()
_SUBSCRIBERS = select(ENDPOINTS.c.id, ENDPOINTS.c.event_types, ENDPOINTS.c.customer_id, ENDPOINTS.c.created_at).where(
    ENDPOINTS.c.status.in_(ACTIVE)
)
_LOCK_ENDPOINTS = (
    select(ENDPOINTS.c.id)
    .where(ENDPOINTS.c.id.in_(bindparam("endpoint_ids", expanding=True)))
    .order_by(ENDPOINTS.c.id)
    .with_for_update()
)
_WITH_PENDING = (
    select(DELIVERIES.c.endpoint_id)
    .where(
        DELIVERIES.c.endpoint_id.in_(bindparam("endpoint_ids", expanding=True)),
        DELIVERIES.c.state == PENDING,
        DELIVERIES.c.position < bindparam("before"),
    )
    .distinct()
)


@dataclass(frozen=True)
class Dispatched:
    events: int
    deliveries: int
    more: bool  # a full batch: call again
    endpoints: frozenset[str] = frozenset()  # idle endpoints that got deliveries: to start


def dispatch_events(db: Database, *, retry_window: timedelta, batch: int = 500) -> Dispatched:
    """Position up to ``batch`` undispatched events and insert their deliveries, in one transaction."""
    now = utcnow()
    with db.connection() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        events = sorted(conn.execute(_POSITION_NEXT_BATCH, {"batch": batch}).all(), key=lambda event: event.position)
        if not events:
            return Dispatched(0, 0, False)
        endpoints = conn.execute(_SUBSCRIBERS).all()
        rows = []
        for event in events:
            for endpoint in endpoints:
                if event.type not in endpoint.event_types or event.created_at < endpoint.created_at:
                    continue
                if endpoint.customer_id is not None and endpoint.customer_id != event.customer_id:
                    continue
                rows.append(
                    {
                        "id": new_id("whd"),
                        "endpoint_id": endpoint.id,
                        "event_seq": event.seq,
                        "event_id": event.id,
                        "order_id": event.order_id,
                        "position": event.position,
                        "state": PENDING,
                        "attempts": 0,
                        "next_attempt_at": now,
                        "give_up_at": event.created_at + retry_window,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
        fed = {row["endpoint_id"] for row in rows}
        busy: set[str] = set()
        if rows:
            conn.execute(insert(DELIVERIES), rows)
            # Endpoints with earlier deliveries pending have a chain running (each finished delivery
            # starts the next) or back off; only idle ones need their first delivery started. Their
            # rows are locked from this check to the commit: a delivery finishing meanwhile waits,
            # then its chain sees the new deliveries; one that finished before is not pending here.
            conn.execute(_LOCK_ENDPOINTS, {"endpoint_ids": sorted(fed)}).all()
            params = {"endpoint_ids": sorted(fed), "before": events[0].position}
            busy = set(conn.execute(_WITH_PENDING, params).scalars())
    return Dispatched(len(events), len(rows), len(events) == batch, frozenset(fed - busy))


def due_deliveries(db: Database, *, endpoints: Collection[str] | None = None, limit: int = 500) -> list[str]:
    """Deliveries to start now: per endpoint that is free (no delivery in flight, not backing
    off), its earliest due delivery. Each success starts the endpoint's next one, so the sweep
    only has to start the heads (after a lost message, a killed worker, a backoff). ``endpoints``:
    only these (the ones a dispatch just gave deliveries)."""
    now = utcnow()
    query = (
        select(DELIVERIES.c.endpoint_id, func.min(DELIVERIES.c.position))
        .join(ENDPOINTS, ENDPOINTS.c.id == DELIVERIES.c.endpoint_id)
        .where(
            DELIVERIES.c.state == PENDING,
            DELIVERIES.c.next_attempt_at <= now,
            ENDPOINTS.c.available_at <= now,
            ENDPOINTS.c.status.in_(ACTIVE),
        )
        .group_by(DELIVERIES.c.endpoint_id)
        .limit(limit)
    )
    if endpoints is not None:
        if not endpoints:
            return []
        query = query.where(DELIVERIES.c.endpoint_id.in_(sorted(endpoints)))
    with db.reader() as session:
        heads = session.execute(query).all()
        if not heads:
            return []
        pairs = [(row[0], row[1]) for row in heads]
        return list(
            session.scalars(
                select(DELIVERIES.c.id).where(
                    tuple_(DELIVERIES.c.endpoint_id, DELIVERIES.c.position).in_(pairs),
                    DELIVERIES.c.state == PENDING,
                )
            )
        )
