"""``/metrics``: Prometheus text: this host's processes, and the fleet's state read at scrape time.

Besides the per-process counters and histograms (requests, tasks, queue wait, recoveries, relay
re-sends), each scrape reads:

- ``orders_queue_depth{queue}``: messages waiting on the broker (Redis lists or RabbitMQ queues);
- ``orders_workers{queue}``, ``orders_worker_processes{queue}``: live workers (and their pool
  processes) consuming each queue, from their liveness keys in Redis (``config/fleet.py``);
- ``orders_beat_last_tick_timestamp_seconds``: when the beat holding the lock last ticked;
- ``orders_jobs_unfinished{queue,state}``, ``orders_jobs_oldest_queued_age_seconds{queue}``,
  ``orders_jobs_stalled``: from the jobs table (stalled: running past their lease, i.e. a dead
  worker's jobs the recovery job has not put back yet).

Every name here is in ``deploy/alerts.yml`` or the docs; ``tests/integration/test_metrics.py``
checks that each metric an alert names exists.

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
from datetime import timedelta

import falcon
import redis
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from api.broker import MessageBroker
from api.deps import Deps
from api.middleware.auth import bearer_secret
from api.openapi import Reply, operation
from config import fleet
from config.metrics import render
from models import Database
from services.jobs.backlog import backlog
from services.kernel.errors import Forbidden, Unauthorized
from tasks.dispatch import QUEUES

log = logging.getLogger(__name__)


class QueueDepthCollector(Collector):
    """Messages waiting in each queue of the message broker."""

    def __init__(self, broker: MessageBroker) -> None:
        self.broker = broker

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depths = self.broker.depths(QUEUES)
        if depths is None:
            return
        gauge = GaugeMetricFamily("orders_queue_depth", "Messages waiting per queue", labels=["queue"])
        for queue, depth in depths.items():
            gauge.add_metric([queue], depth)
        yield gauge


class FleetCollector(Collector):
    """Live workers per queue and beat's last tick, from their liveness keys in Redis."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client, self.prefix = client, prefix

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            workers = fleet.live_workers(self.client, self.prefix)
            tick = fleet.beat_last_tick(self.client, self.prefix)
        except redis.RedisError as exc:
            log.warning("fleet liveness unavailable: %r", exc)
            return
        count = GaugeMetricFamily("orders_workers", "Live workers consuming each queue", labels=["queue"])
        processes = GaugeMetricFamily(
            "orders_worker_processes", "Pool processes of the live workers consuming each queue", labels=["queue"]
        )
        for queue in QUEUES:
            serving = [worker for worker in workers if queue in worker.queues]
            count.add_metric([queue], len(serving))
            processes.add_metric([queue], sum(worker.concurrency for worker in serving))
        yield count
        yield processes
        beat = GaugeMetricFamily(
            "orders_beat_last_tick_timestamp_seconds", "Unix time of the last tick of the beat holding the lock"
        )
        beat.add_metric([], tick if tick is not None else 0.0)
        yield beat


class JobsCollector(Collector):
    """Unfinished jobs per queue and state, the oldest queued one's age, and stalled jobs."""

    def __init__(self, db: Database, lease: timedelta) -> None:
        self.db, self.lease = db, lease

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            found = backlog(self.db, self.lease)
        except Exception as exc:  # the database is out: /readyz says so; the scrape goes on
            log.warning("job backlog unavailable: %r", exc)
            return
        unfinished = GaugeMetricFamily(
            "orders_jobs_unfinished", "Jobs queued or running, per queue and state", labels=["queue", "state"]
        )
        for queue in QUEUES:
            for state in ("queued", "running"):
                unfinished.add_metric([queue, state], found.unfinished.get((queue, state), 0))
        yield unfinished
        oldest = GaugeMetricFamily(
            "orders_jobs_oldest_queued_age_seconds", "Age of the oldest job still queued, per queue", labels=["queue"]
        )
        for queue in QUEUES:
            oldest.add_metric([queue], found.oldest_queued_seconds.get(queue, 0.0))
        yield oldest
        stalled = GaugeMetricFamily(
            "orders_jobs_stalled", "Running jobs whose worker stopped renewing their lease (not yet recovered)"
        )
        stalled.add_metric([], found.stalled)
        yield stalled


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
        self.collectors: list[Collector] = [
            QueueDepthCollector(deps.message_broker),
            FleetCollector(deps.broker, deps.settings.queue_prefix),
            JobsCollector(deps.db, timedelta(seconds=deps.settings.job_lease_seconds)),
        ]
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
        resp.data = render(self.collectors)
