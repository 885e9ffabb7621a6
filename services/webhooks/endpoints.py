"""Webhook endpoints: subscribe a URL to event types, list, read and delete them.

Staff (admin, ops) may subscribe to every customer's events, or to one customer's; a customer key
only to its own customer's (its own orders, its own tasks). Another customer's endpoint does not
exist for a customer key (404, as orders do). The signing secret is returned once, on creation.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, select, true, update

from models import Database, WebhookDelivery, WebhookEndpoint
from models.ids import new_id
from models.types import utcnow
from services.events.record import EVENT_TYPES
from services.kernel.errors import Forbidden, ResourceNotFound, ValidationFailed
from services.kernel.principal import Principal
from services.webhooks.addresses import validate_url

ENABLED, FAILING, DELETED = "enabled", "failing", "deleted"
ACTIVE = (ENABLED, FAILING)
# Deliveries' states (a delivery is pending until it succeeds or its retry window closes).
PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"
MAX_ENDPOINTS_PER_OWNER = 20


@dataclass(frozen=True)
class EndpointView:
    id: str
    url: str
    event_types: list[str]
    description: str | None
    customer_id: str | None
    status: str
    created_at: datetime
    secret: str | None = None  # on creation only


@dataclass(frozen=True)
class NewEndpoint:
    url: str
    event_types: list[str]
    description: str | None = None
    customer_id: str | None = None


def new_secret() -> str:
    """``whsec_`` and 24 random bytes in base64: the Standard Webhooks secret format."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _view(row: WebhookEndpoint, *, secret: str | None = None) -> EndpointView:
    return EndpointView(
        row.id, row.url, list(row.event_types), row.description, row.customer_id, row.status, row.created_at, secret
    )


def _scope(principal: Principal, customer_id: str | None) -> str | None:
    """Whose events the endpoint gets: a customer key's own; staff's choice (None: everyone's)."""
    if principal.is_staff:
        return customer_id
    if principal.customer_id is None:
        raise Forbidden(details=[{"role": principal.role}])
    if customer_id is not None and customer_id != principal.customer_id:
        raise Forbidden(
            "A customer key may subscribe to its own customer's events only.",
            details=[{"field": "customerId", "customerId": customer_id}],
        )
    return principal.customer_id


def _check_types(event_types: list[str]) -> list[str]:
    unknown = [
        {"field": f"eventTypes[{index}]", "message": f"unknown event type; known: {', '.join(EVENT_TYPES)}"}
        for index, name in enumerate(event_types)
        if name not in EVENT_TYPES
    ]
    if unknown:
        raise ValidationFailed(details=unknown)
    if not event_types:
        raise ValidationFailed(details=[{"field": "eventTypes", "message": "name at least one event type"}])
    return sorted(set(event_types), key=EVENT_TYPES.index)


def create_endpoint(db: Database, principal: Principal, command: NewEndpoint, *, allow_private: bool) -> EndpointView:
    """Check everything (types, scope, the URL and where its host resolves), then insert the row."""
    event_types = _check_types(command.event_types)
    customer_id = _scope(principal, command.customer_id)
    url = validate_url(command.url, allow_private=allow_private)
    secret = new_secret()
    now = utcnow()
    row = WebhookEndpoint(
        id=new_id("we"),
        url=url,
        event_types=event_types,
        secret=secret,
        description=command.description,
        owner_key_id=principal.key_id,
        customer_id=customer_id,
        status=ENABLED,
        available_at=now,
        created_at=now,
    )
    with db.transaction() as session:
        owned = session.scalars(
            select(WebhookEndpoint.id).where(
                WebhookEndpoint.status.in_(ACTIVE), _owned_by(principal, include_staff_all=False)
            )
        ).all()
        if len(owned) >= MAX_ENDPOINTS_PER_OWNER:
            raise ValidationFailed(
                f"At most {MAX_ENDPOINTS_PER_OWNER} endpoints per owner.",
                details=[{"field": "url", "message": "too many endpoints; delete one first"}],
            )
        session.add(row)
    return _view(row, secret=secret)


def _owned_by(principal: Principal, *, include_staff_all: bool = True) -> ColumnElement[bool]:
    """The endpoints this caller may see (staff: all of them; a customer: its customer's), or, for
    the per-owner limit, the ones it made (staff) or its customer has (a customer)."""
    if principal.is_staff:
        return true() if include_staff_all else WebhookEndpoint.owner_key_id == principal.key_id
    return WebhookEndpoint.customer_id == principal.customer_id


def list_endpoints(db: Database, principal: Principal) -> list[EndpointView]:
    with db.reader() as session:
        rows = session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.status.in_(ACTIVE), _owned_by(principal))
            .order_by(WebhookEndpoint.id)
        ).all()
        return [_view(row) for row in rows]


def _visible(session: object, principal: Principal, endpoint_id: str) -> WebhookEndpoint:
    row = session.get(WebhookEndpoint, endpoint_id)  # type: ignore[attr-defined]
    if row is None or row.status not in ACTIVE or not principal.can_see_customer(row.customer_id):
        raise ResourceNotFound("Webhook endpoint does not exist.", details=[{"endpointId": endpoint_id}])
    if not principal.is_staff and row.customer_id is None:
        raise ResourceNotFound("Webhook endpoint does not exist.", details=[{"endpointId": endpoint_id}])
    return row


def get_endpoint(db: Database, principal: Principal, endpoint_id: str) -> EndpointView:
    with db.reader() as session:
        return _view(_visible(session, principal, endpoint_id))


def delete_endpoint(db: Database, principal: Principal, endpoint_id: str) -> None:
    """The endpoint stops receiving at once; its pending deliveries fail as ``ENDPOINT_DELETED``."""
    now = utcnow()
    with db.transaction() as session:
        row = _visible(session, principal, endpoint_id)
        # Deliveries before the endpoint: the order every delivery attempt locks them in.
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.state == PENDING)
            .values(
                state=FAILED,
                next_attempt_at=None,
                updated_at=now,
                last_error={"code": "ENDPOINT_DELETED", "message": "The endpoint was deleted."},
            )
            .execution_options(synchronize_session=False)
        )
        row.status = DELETED
        row.deleted_at = now


def visible_endpoint(db: Database, principal: Principal, endpoint_id: str) -> EndpointView:
    """For the deliveries' use cases: the endpoint, or 404."""
    return get_endpoint(db, principal, endpoint_id)
