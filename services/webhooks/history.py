"""What an endpoint was sent: its deliveries (oldest first, keyset paged), and re-sending one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from models import Database, Event, WebhookDelivery
from models.types import utcnow
from services.kernel.errors import ResourceNotFound
from services.kernel.principal import Principal
from services.webhooks.endpoints import PENDING, visible_endpoint


@dataclass(frozen=True)
class DeliveryView:
    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    order_id: str | None
    state: str
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: dict[str, Any] | None
    last_duration_ms: int | None
    created_at: datetime


@dataclass(frozen=True)
class DeliveryPage:
    deliveries: list[DeliveryView]
    next_after: str | None


_COLUMNS = (WebhookDelivery, Event.type)


def _view(delivery: WebhookDelivery, event_type: str) -> DeliveryView:
    return DeliveryView(
        delivery.id,
        delivery.endpoint_id,
        delivery.event_id,
        event_type,
        delivery.order_id,
        delivery.state,
        delivery.attempts,
        delivery.next_attempt_at,
        delivery.last_attempt_at,
        delivery.last_status_code,
        delivery.last_error,
        delivery.last_duration_ms,
        delivery.created_at,
    )


def list_deliveries(
    db: Database, principal: Principal, endpoint_id: str, *, after: str | None, limit: int, state: str | None
) -> DeliveryPage:
    visible_endpoint(db, principal, endpoint_id)
    query = (
        select(*_COLUMNS)
        .join(Event, Event.seq == WebhookDelivery.event_seq)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
        .order_by(WebhookDelivery.id)
        .limit(limit + 1)
    )
    if after is not None:
        query = query.where(WebhookDelivery.id > after)
    if state is not None:
        query = query.where(WebhookDelivery.state == state)
    with db.reader() as session:
        rows = session.execute(query).all()
    views = [_view(row[0], row[1]) for row in rows[:limit]]
    return DeliveryPage(views, views[-1].id if len(rows) > limit else None)


def resend_delivery(
    db: Database, principal: Principal, endpoint_id: str, delivery_id: str, *, retry_window: timedelta
) -> DeliveryView:
    """Deliver the event again, now, with the same ``Webhook-Id`` and a new retry window."""
    visible_endpoint(db, principal, endpoint_id)
    now = utcnow()
    with db.transaction() as session:
        delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
        if delivery is None or delivery.endpoint_id != endpoint_id:
            raise ResourceNotFound("Delivery does not exist.", details=[{"deliveryId": delivery_id}])
        event_type = session.scalar(select(Event.type).where(Event.seq == delivery.event_seq)) or ""
        delivery.state = PENDING
        delivery.next_attempt_at = now
        delivery.give_up_at = now + retry_window
        delivery.updated_at = now
        return _view(delivery, event_type)
