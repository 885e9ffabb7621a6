"""Old events and their deliveries are deleted once past their retention (housekeeping).

An event is kept ``EVENT_RETENTION_SECONDS`` (30 days), far past the day its deliveries retry, so
a client polling ``GET /api/events`` after a long outage still finds it. A delivery still pending
within its retry window (a recent resend) keeps its event; the next run deletes both. Bounded per
run (``batch``), oldest first, so the beat job is cheap beside live traffic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select

from models import Database, Event, WebhookDelivery
from models.types import utcnow
from services.webhooks.endpoints import PENDING


@dataclass(frozen=True)
class PurgedEvents:
    events: int
    deliveries: int


def purge_old_events(
    db: Database, *, older_than: timedelta, now: datetime | None = None, batch: int = 5000
) -> PurgedEvents:
    now = now or utcnow()
    cutoff = now - older_than
    with db.transaction() as session:
        seqs = session.scalars(
            select(Event.seq)
            .where(Event.created_at < cutoff, Event.position.is_not(None))
            .order_by(Event.seq)
            .limit(batch)
        ).all()
        if not seqs:
            return PurgedEvents(0, 0)
        deliveries = session.execute(
            delete(WebhookDelivery).where(
                WebhookDelivery.event_seq.in_(seqs),
                or_(WebhookDelivery.state != PENDING, WebhookDelivery.give_up_at < now),
            )
        ).rowcount
        kept = set(session.scalars(select(WebhookDelivery.event_seq).where(WebhookDelivery.event_seq.in_(seqs))))
        gone = [seq for seq in seqs if seq not in kept]
        events = session.execute(delete(Event).where(Event.seq.in_(gone))).rowcount if gone else 0
    return PurgedEvents(events, deliveries)
