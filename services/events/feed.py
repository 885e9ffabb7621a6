"""``GET /api/events``: the events a caller may see, in event order, keyset paged by ``after``.

Only dispatched events are listed (those with a position, given after commit by the dispatcher,
usually within milliseconds): positions are handed out in commit order, so a page that ends at an
event is never followed by an event that would have sorted before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from models import Database, Event
from services.kernel.errors import InvalidQuery
from services.kernel.principal import Principal


@dataclass(frozen=True)
class EventView:
    id: str
    type: str
    order_id: str | None
    created_at: datetime
    data: str  # JSON text, as written


@dataclass(frozen=True)
class EventPage:
    events: list[EventView]
    next_after: str | None


def _scoped(query, principal: Principal):  # noqa: ANN001, ANN202 (a Select)
    return query if principal.is_staff else query.where(Event.customer_id == principal.customer_id)


def list_events(
    db: Database, principal: Principal, *, after: str | None, limit: int, types: list[str] | None = None
) -> EventPage:
    with db.reader() as session:
        start = 0
        if after is not None:
            found = session.scalar(_scoped(select(Event.position).where(Event.id == after), principal))
            if found is None:
                raise InvalidQuery(
                    "`after` names no event of yours.",
                    details=[{"parameter": "after", "message": "unknown event id", "value": after}],
                )
            start = found
        query = _scoped(
            select(Event.id, Event.type, Event.order_id, Event.created_at, Event.data).where(
                Event.position.is_not(None), Event.position > start
            ),
            principal,
        )
        if types:
            query = query.where(Event.type.in_(types))
        rows = session.execute(query.order_by(Event.position).limit(limit + 1)).all()
    views = [EventView(*row) for row in rows[:limit]]
    return EventPage(views, views[-1].id if len(rows) > limit else None)
