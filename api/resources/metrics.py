"""``/metrics``: Prometheus text, including each queue's depth read from Redis at scrape time."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import falcon
import redis
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from api.deps import Deps
from config.metrics import render
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


class MetricsResource:
    public = True

    def __init__(self, deps: Deps) -> None:
        self.queue_depth = QueueDepthCollector(deps.broker)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = render([self.queue_depth])
