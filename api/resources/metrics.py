"""``/metrics``: Prometheus text, including each queue's depth read from Redis at scrape time.

Not for the public: routes, volumes, error rates and queue depths are operational detail. With
``METRICS_TOKEN`` set, a scrape must send ``Authorization: Bearer <token>`` (401 otherwise, from
any address); unset, only loopback clients (``REMOTE_ADDR`` in 127.0.0.0/8 or ``::1``) may read it
(403 otherwise), which suits a Prometheus or agent on the same host. ``REMOTE_ADDR`` is the socket
peer, never a forwarded header; behind a proxy on the same host every request looks local, so set
a token there.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Iterator

import falcon
import redis
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from api.deps import Deps
from api.middleware.auth import bearer_secret
from api.openapi import Reply, operation
from config.metrics import render
from services.kernel.errors import Forbidden, Unauthorized
from tasks.dispatch import QUEUES

log = logging.getLogger(__name__)


class QueueDepthCollector(Collector):
    """Messages waiting in each queue (the Redis transport keeps a queue as a list)."""

    def __init__(self, broker: redis.Redis) -> None:
        self.broker = broker

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("orders_queue_depth", "Messages waiting per queue", labels=["queue"])
        try:
            with self.broker.pipeline(transaction=False) as pipe:
                for queue in QUEUES:
                    pipe.llen(queue)
                depths = pipe.execute()
        except redis.RedisError as exc:
            log.warning("queue depth unavailable: %r", exc)
            return
        for queue, depth in zip(QUEUES, depths, strict=True):
            gauge.add_metric([queue], depth)
        yield gauge


def is_loopback(address: str) -> bool:
    """Whether the socket peer is this host (an IPv4-mapped ``::ffff:127.0.0.1`` included)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # e.g. empty over a Unix socket: not known to be local
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def check_scraper(req: falcon.Request, token: str | None) -> None:
    """Raise unless the request may read the metrics (see the module docstring)."""
    if token:
        supplied = bearer_secret(req) or ""
        if not hmac.compare_digest(supplied.encode(), token.encode()):
            raise Unauthorized("A valid metrics token is required (Authorization: Bearer <METRICS_TOKEN>).")
        return
    if not is_loopback(req.remote_addr):
        raise Forbidden("Metrics are served to loopback clients only; set METRICS_TOKEN to scrape from elsewhere.")


class MetricsResource:
    # Not an API key: the metrics token, or the loopback address, is the credential.
    public = True

    def __init__(self, deps: Deps) -> None:
        self.queue_depth = QueueDepthCollector(deps.broker)
        self.token = deps.settings.metrics_token

    @operation(
        "metrics",
        tags=["health"],
        public=True,  # its own credential: the metrics token or the loopback address
        replies={
            200: Reply(
                description="Prometheus text exposition format 0.0.4.",
                content={"text/plain": {"type": "string"}},
            )
        },
        errors=(401, 403),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Prometheus text (operators only).

        With the `METRICS_TOKEN` setting, send `Authorization: Bearer <token>` (401 `UNAUTHORIZED`
        otherwise); without it, only loopback clients may scrape (403 `FORBIDDEN` otherwise)."""
        check_scraper(req, self.token)
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = render([self.queue_depth])
