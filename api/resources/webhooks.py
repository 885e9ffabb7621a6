"""``/api/webhook-endpoints``: subscribe a URL to events, list and delete subscriptions, see what
was delivered and deliver one again. ``/api/events``: the same events, for clients that poll."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import falcon

from api.deps import Deps
from api.media import loads, send_json
from api.openapi import LOCATION, Reply, operation
from api.schemas import (
    DeliveriesQueryIn,
    EventListOut,
    EventsQueryIn,
    WebhookDeliveryListOut,
    WebhookDeliveryOut,
    WebhookEndpointCreatedOut,
    WebhookEndpointIn,
    WebhookEndpointListOut,
    WebhookEndpointOut,
)
from api.timefmt import iso
from api.validation import parse_body, parse_query
from services.events.feed import EventView, list_events
from services.webhooks.endpoints import (
    EndpointView,
    NewEndpoint,
    create_endpoint,
    delete_endpoint,
    get_endpoint,
    list_endpoints,
)
from services.webhooks.history import DeliveryView, list_deliveries, resend_delivery
from tasks.webhooks import send_delivery


def _present(body: dict[str, Any]) -> dict[str, Any]:
    """Optional fields are left out, never null (the document says so)."""
    return {key: value for key, value in body.items() if value is not None}


def endpoint_body(endpoint: EndpointView) -> dict[str, Any]:
    return _present(
        {
            "id": endpoint.id,
            "url": endpoint.url,
            "eventTypes": endpoint.event_types,
            "description": endpoint.description,
            "customerId": endpoint.customer_id,
            "status": endpoint.status,
            "createdAt": iso(endpoint.created_at),
            "secret": endpoint.secret,
        }
    )


def delivery_body(delivery: DeliveryView) -> dict[str, Any]:
    return _present(
        {
            "id": delivery.id,
            "endpointId": delivery.endpoint_id,
            "eventId": delivery.event_id,
            "eventType": delivery.event_type,
            "orderId": delivery.order_id,
            "state": delivery.state,
            "attempts": delivery.attempts,
            "nextAttemptAt": iso(delivery.next_attempt_at) if delivery.state == "pending" else None,
            "lastAttemptAt": iso(delivery.last_attempt_at),
            "lastStatusCode": delivery.last_status_code,
            "lastError": delivery.last_error,
            "lastDurationMs": delivery.last_duration_ms,
            "createdAt": iso(delivery.created_at),
        }
    )


def event_body(event: EventView) -> dict[str, Any]:
    return _present(
        {
            "id": event.id,
            "type": event.type,
            "createdAt": iso(event.created_at),
            "orderId": event.order_id,
            "data": loads(event.data),
        }
    )


def _next_link(req: falcon.Request, after: str | None, **params: Any) -> str | None:
    if after is None:
        return None
    query = {key: value for key, value in params.items() if value is not None}
    return f"{req.prefix}{req.path}?{urlencode({**query, 'after': after})}"


class WebhookEndpointsResource:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @operation(
        "createWebhookEndpoint",
        tags=["webhooks"],
        json=WebhookEndpointIn,
        idempotent=True,
        replies={
            201: Reply(WebhookEndpointCreatedOut, "Subscribed; the secret is in this response only.", (LOCATION,))
        },
        errors=(403,),
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Subscribe a URL to event types.

        Each event is POSTed as JSON `{"id", "type", "timestamp", "data"}` with the Standard Webhooks
        headers `webhook-id` (the event id, the same on every retry), `webhook-timestamp` and
        `webhook-signature` (`v1,` + base64 HMAC-SHA256 of `id.timestamp.body` with the secret). Any 2xx
        is success; anything else, a timeout (`WEBHOOK_TIMEOUT_SECONDS`) or a redirect is retried with
        exponential backoff and jitter for about 24 h, after which the endpoint is `failing`. Events of
        one order arrive in the order they happened. Staff may subscribe to every customer's events (or
        one customer's, `customerId`); a customer key to its own customer's only. A URL whose host
        resolves to a loopback, private, link-local or reserved address is 400 VALIDATION_ERROR.
        """
        body = parse_body(req, WebhookEndpointIn)
        created = create_endpoint(
            self.deps.db,
            req.context.principal,
            NewEndpoint(body.url, list(body.eventTypes), body.description, body.customerId),
            allow_private=self.deps.settings.webhook_allow_private_urls,
        )
        resp.status = falcon.HTTP_201
        resp.location = f"/api/webhook-endpoints/{created.id}"
        resp.media = endpoint_body(created)

    @operation(
        "listWebhookEndpoints",
        tags=["webhooks"],
        replies={200: Reply(WebhookEndpointListOut, "The endpoints the caller may see (secrets are never listed).")},
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Webhook endpoints: staff see all of them, a customer key its own customer's."""
        resp.media = {"value": [endpoint_body(e) for e in list_endpoints(self.deps.db, req.context.principal)]}


class WebhookEndpointResource:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @operation(
        "getWebhookEndpoint",
        tags=["webhooks"],
        replies={200: Reply(WebhookEndpointOut, "The endpoint.")},
        errors=(404,),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, endpoint_id: str) -> None:
        """One webhook endpoint (another customer's is 404 NOT_FOUND)."""
        resp.media = endpoint_body(get_endpoint(self.deps.db, req.context.principal, endpoint_id))

    @operation(
        "deleteWebhookEndpoint",
        tags=["webhooks"],
        replies={204: Reply(description="Deleted: nothing more is sent to it.")},
        errors=(404,),
    )
    def on_delete(self, req: falcon.Request, resp: falcon.Response, endpoint_id: str) -> None:
        """Delete an endpoint; its pending deliveries fail as ENDPOINT_DELETED."""
        delete_endpoint(self.deps.db, req.context.principal, endpoint_id)
        resp.status = falcon.HTTP_204


class WebhookDeliveriesResource:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @operation(
        "listWebhookDeliveries",
        tags=["webhooks"],
        query=DeliveriesQueryIn,
        replies={200: Reply(WebhookDeliveryListOut, "The endpoint's deliveries, oldest first.")},
        errors=(404,),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, endpoint_id: str) -> None:
        """Every delivery of an event to this endpoint: its state, attempts and last outcome."""
        query = parse_query(req, DeliveriesQueryIn)
        page = list_deliveries(
            self.deps.db, req.context.principal, endpoint_id, after=query.after, limit=query.limit, state=query.state
        )
        body: dict[str, Any] = {"value": [delivery_body(d) for d in page.deliveries]}
        link = _next_link(req, page.next_after, limit=query.limit, state=query.state)
        if link is not None:
            body["nextLink"] = link
        send_json(resp, body)


class WebhookResendResource:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @operation(
        "resendWebhookDelivery",
        tags=["webhooks"],
        idempotent=True,
        replies={202: Reply(WebhookDeliveryOut, "Queued again: sent now, then retried as a new delivery would be.")},
        errors=(404,),
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response, endpoint_id: str, delivery_id: str) -> None:
        """Deliver this event to this endpoint again (same `webhook-id`), whatever its state."""
        window = timedelta(seconds=self.deps.settings.webhook_retry_window_seconds)
        delivery = resend_delivery(self.deps.db, req.context.principal, endpoint_id, delivery_id, retry_window=window)
        send_delivery(self.deps.sender.app, self.deps.settings, delivery.id)
        resp.status = falcon.HTTP_202
        resp.media = delivery_body(delivery)


class EventsResource:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @operation(
        "listEvents",
        tags=["webhooks"],
        query=EventsQueryIn,
        replies={200: Reply(EventListOut, "One page of events, in event order.")},
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The events webhooks deliver, for clients that cannot receive them: in event order, keyset
        paged (`after` the last id seen; follow `nextLink`). A customer key sees its own customer's
        events only. An event is listed once dispatched, usually within milliseconds of its commit;
        polling with `after` never misses one that committed late. `after` naming no event of the
        caller's is 400 INVALID_QUERY.
        """
        query = parse_query(req, EventsQueryIn)
        page = list_events(
            self.deps.db,
            req.context.principal,
            after=query.after,
            limit=query.limit,
            types=[query.type] if query.type else None,
        )
        body: dict[str, Any] = {"value": [event_body(event) for event in page.events]}
        link = _next_link(req, page.next_after, limit=query.limit, type=query.type)
        if link is not None:
            body["nextLink"] = link
        send_json(resp, body)
