"""Prometheus metrics shared by the API and the workers.

When ``PROMETHEUS_MULTIPROC_DIR`` is set (the runner sets it), every process on the host writes
its samples there and ``/metrics`` aggregates them, so gunicorn's workers and the Celery pool
are all counted; without it each process keeps its own registry.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.registry import REGISTRY, Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
TASK_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900)

HTTP_REQUESTS = Counter(
    "orders_http_requests_total", "HTTP requests by route and status", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "orders_http_request_duration_seconds", "HTTP request latency", ["method", "route"], buckets=LATENCY_BUCKETS
)
TASKS = Counter("orders_tasks_total", "Task runs by task type and outcome", ["task", "outcome"])
TASK_DURATION = Histogram("orders_task_duration_seconds", "Task run time by task type", ["task"], buckets=TASK_BUCKETS)
ORDERS_CREATED = Counter("orders_created_total", "Orders created")
PAYMENTS = Counter("orders_payments_total", "Payment attempts by action and outcome", ["action", "outcome"])


def render(extra: list[Collector] | None = None) -> bytes:
    """The exposition text: this host's processes (multiprocess mode) plus ``extra`` collectors."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        for collector in list(REGISTRY._collector_to_names):  # the process's own metrics
            registry.register(collector)
    for collector in extra or []:
        registry.register(collector)
    return generate_latest(registry)
