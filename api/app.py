"""The Falcon app factory. ``gunicorn 'api.app:get_app()'`` builds one app per worker process."""

from __future__ import annotations

import falcon
import redis

from api.broker import MessageBroker
from api.deps import Deps
from api.errors import install_error_handlers
from api.media import JSONHandler
from api.middleware.auth import AuthMiddleware
from api.middleware.body import BodyLimitMiddleware
from api.middleware.cors import CORSMiddleware
from api.middleware.events import EventNudgeMiddleware
from api.middleware.idempotency import IdempotencyMiddleware
from api.middleware.metrics import MetricsMiddleware
from api.middleware.params import NulParamsMiddleware
from api.middleware.rate_limit import RateLimitMiddleware
from api.middleware.request_id import RequestIdMiddleware
from api.openapi import DocsPageResource, OpenAPIResource
from api.resources.exports import ExportFileResource, OrderExportResource
from api.resources.health import HealthResource, ReadyResource
from api.resources.keys import KeyResource, KeysResource
from api.resources.lifecycle import BulkCancelResource, OrderItemsResource, OrderStatesResource, OrderStatusResource
from api.resources.metrics import MetricsResource
from api.resources.offers import OfferResource
from api.resources.orders import OrderCountResource, OrderMetricsResource, OrderResource, OrdersResource
from api.resources.payments import (
    CheckoutCancelledResource,
    CheckoutCompleteResource,
    CheckoutRedirectResource,
    PaymentResource,
    WebhookResource,
)
from api.resources.reconciliation import ReconciliationReportsResource
from api.resources.sandbox import SandboxCheckoutActionResource, SandboxCheckoutPageResource
from api.resources.task_events import TaskEventsResource
from api.resources.tasks import TaskResource
from api.resources.webhooks import (
    EventsResource,
    WebhookDeliveriesResource,
    WebhookEndpointResource,
    WebhookEndpointsResource,
    WebhookResendResource,
)
from config.logging import configure_logging
from config.settings import Settings
from config.startup import settings_or_exit
from models import Database
from services.access.keys import KeyCache
from services.access.rate_limits import RateLimiter
from services.payments.gateways.registry import Gateways
from tasks.dispatch import make_sender
from tasks.notices import NoticeListener
from tasks.webhooks import dispatch_nudge


def build_deps(settings: Settings) -> Deps:
    db = Database.connect(settings)
    sender = make_sender(settings)
    broker = redis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=1, socket_timeout=1, health_check_interval=10
    )
    return Deps(
        settings=settings,
        db=db,
        sender=sender,
        broker=broker,
        gateways=Gateways(settings, db),
        keys=KeyCache(settings.api_key_cache_seconds),
        notices=NoticeListener(settings.redis_url),
        message_broker=MessageBroker(settings),
        nudge=dispatch_nudge(sender.app, settings, broker),
        limiter=RateLimiter(
            settings.redis_url,
            settings.rate_limit_for,
            timeout=settings.rate_limit_timeout_seconds,
            retry_seconds=settings.rate_limit_retry_seconds,
        ),
    )


def create_app(settings: Settings, deps: Deps | None = None) -> falcon.App:
    """Everything is built from arguments: no module-level engines, apps or sessions."""
    deps = deps or build_deps(settings)
    app = falcon.App(
        middleware=[
            RequestIdMiddleware(),
            MetricsMiddleware(),
            CORSMiddleware(settings.cors_origins),
            BodyLimitMiddleware(settings.max_body_bytes),
            NulParamsMiddleware(),
            AuthMiddleware(deps.db, deps.keys),
            RateLimitMiddleware(deps.limiter),
            IdempotencyMiddleware(deps.db, settings.idempotency_ttl_seconds),
            EventNudgeMiddleware(deps.nudge),
        ]
    )
    json_handler = JSONHandler()
    app.req_options.media_handlers[falcon.MEDIA_JSON] = json_handler
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = json_handler
    app.req_options.strip_url_path_trailing_slash = True
    install_error_handlers(app)

    app.add_route("/healthz", HealthResource())
    app.add_route("/readyz", ReadyResource(deps))
    app.add_route("/metrics", MetricsResource(deps))
    app.add_route("/api/orders", OrdersResource(deps))
    app.add_route("/api/orders/export", OrderExportResource(deps))
    app.add_route("/api/orders/items", OrderItemsResource(deps))
    app.add_route("/api/orders/bulk-cancel", BulkCancelResource(deps))
    app.add_route("/api/orders/payment", PaymentResource(deps))
    # A static segment wins over a field segment in Falcon's router, so "metrics" is never an order id.
    app.add_route("/api/orders/metrics", OrderMetricsResource(deps))
    app.add_route("/api/orders/$count", OrderCountResource(deps))
    app.add_route("/api/orders/{order_id}", OrderResource(deps))
    app.add_route("/api/orders/{order_id}/status", OrderStatusResource(deps))
    app.add_route("/api/orders/{order_id}/checkout", CheckoutRedirectResource(deps))
    app.add_route("/api/orders/{order_id}/checkout/complete", CheckoutCompleteResource(deps))
    app.add_route("/api/orders/{order_id}/checkout/cancelled", CheckoutCancelledResource(deps))
    app.add_route("/api/payments/webhooks/{gateway_id}", WebhookResource(deps))
    app.add_route("/api/meta/order-states", OrderStatesResource())
    app.add_route("/sandbox/checkout/{key}/{session_id}", SandboxCheckoutPageResource(deps))
    app.add_route("/sandbox/checkout/{key}/{session_id}/{decision}", SandboxCheckoutActionResource(deps))
    app.add_route("/api/exports/{export_id}/file", ExportFileResource(deps))
    app.add_route("/api/reconciliation/reports", ReconciliationReportsResource(deps))
    app.add_route("/api/offers/{offer_id}", OfferResource(deps))
    app.add_route("/api/tasks/{task_id}", TaskResource(deps))
    app.add_route("/api/tasks/{task_id}/events", TaskEventsResource(deps))
    app.add_route("/api/keys", KeysResource(deps))
    app.add_route("/api/keys/{key_id}", KeyResource(deps))
    app.add_route("/api/webhook-endpoints", WebhookEndpointsResource(deps))
    app.add_route("/api/webhook-endpoints/{endpoint_id}", WebhookEndpointResource(deps))
    app.add_route("/api/webhook-endpoints/{endpoint_id}/deliveries", WebhookDeliveriesResource(deps))
    app.add_route("/api/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/resend", WebhookResendResource(deps))
    app.add_route("/api/events", EventsResource(deps))
    app.add_route("/api/openapi.json", OpenAPIResource(app))
    app.add_route("/api/docs", DocsPageResource(app))
    return app


def get_app() -> falcon.App:
    """Gunicorn entry point: settings from the environment (a bad one: one line each, exit 2)."""
    settings = settings_or_exit()
    configure_logging(settings)
    deps = build_deps(settings)
    deps.notices.start()  # subscribed before the first Prefer: wait can miss a notice
    return create_app(settings, deps)
