"""Writing an event in the caller's transaction: one INSERT (or one more CTE of a statement).

The use case that makes a change calls :func:`add_event` (or builds :func:`event_row` into its own
statement) before its commit, so the event exists exactly when the change does. Nothing else
happens in the request: no endpoint is looked up and nothing is sent (the dispatcher does that
after commit, ``services.webhooks.dispatch``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Connection, insert

from models import Event
from models.ids import new_id
from models.types import utcnow

ORDER_CREATED = "order.created"
ORDER_STATUS_CHANGED = "order.status_changed"
ORDER_PAYMENT_SUCCEEDED = "order.payment_succeeded"
ORDER_PAYMENT_FAILED = "order.payment_failed"
ORDER_CANCELLED = "order.cancelled"
ORDER_ITEM_CHANGED = "order.item_changed"
EXPORT_READY = "export.ready"
TASK_FINISHED = "task.finished"
EVENT_TYPES = (
    ORDER_CREATED,
    ORDER_STATUS_CHANGED,
    ORDER_PAYMENT_SUCCEEDED,
    ORDER_PAYMENT_FAILED,
    ORDER_CANCELLED,
    ORDER_ITEM_CHANGED,
    EXPORT_READY,
    TASK_FINISHED,
)

EVENTS = Event.__table__
INSERT_EVENT = insert(EVENTS)
# The columns a new event sets (``seq`` is the database's; ``position`` the dispatcher's).
EVENT_COLUMNS = ["id", "type", "order_id", "customer_id", "data", "created_at"]


def _encode_extra(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_z(value)
    raise NotImplementedError(type(value))


# Decimals leave as JSON numbers (money is exact end to end), timestamps as ``…Z`` to the second.
_ENCODER = msgspec.json.Encoder(decimal_format="number", enc_hook=_encode_extra)


def iso_z(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def encode_data(data: Mapping[str, Any]) -> str:
    return _ENCODER.encode(_plain(data)).decode()


def _plain(value: Any) -> Any:
    """datetimes inside the data (msgspec encodes them itself, with microseconds: not our format)."""
    if isinstance(value, datetime):
        return iso_z(value)
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def event_row(
    event_type: str,
    *,
    order_id: str | None,
    customer_id: str | None,
    data: Mapping[str, Any],
    now: datetime | None = None,
) -> dict[str, Any]:
    """The columns of a new event (its ``data`` encoded once, here)."""
    return {
        "id": new_id("evt"),
        "type": event_type,
        "order_id": order_id,
        "customer_id": customer_id,
        "data": encode_data(data),
        "created_at": now or utcnow(),
    }


def add_event(
    conn: Connection,
    event_type: str,
    *,
    order_id: str | None,
    customer_id: str | None,
    data: Mapping[str, Any],
    now: datetime | None = None,
) -> None:
    """Insert one event on the caller's connection (inside its transaction)."""
    conn.execute(INSERT_EVENT, event_row(event_type, order_id=order_id, customer_id=customer_id, data=data, now=now))


def add_events(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Several events of one change, in the list's order (``seq`` follows it)."""
    for row in rows:
        conn.execute(INSERT_EVENT, row)
