"""Prometheus metrics shared by the API and the workers.

When ``PROMETHEUS_MULTIPROC_DIR`` is set (the runner sets it), every process on the host writes
its samples there and ``/metrics`` aggregates them, so gunicorn's workers and the Celery pool
are all counted; without it each process keeps its own registry.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess, start_http_server
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
QUEUE_WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
QUEUE_WAIT = Histogram(
    "orders_queue_wait_seconds",
    "Time from a job's message being sent to a worker starting it, by queue",
    ["queue"],
    buckets=QUEUE_WAIT_BUCKETS,
)
JOBS_RECOVERED = Counter(
    "orders_jobs_recovered_total", "Running jobs put back in their queue after their worker's lease ran out"
)
RATE_LIMIT_UNCHECKED = Counter(
    "orders_rate_limit_unchecked_total",
    "Requests let through without a rate-limit check because Redis was unreachable (or skipped after a failure)",
)
RATE_LIMITED = Counter("orders_rate_limited_total", "Requests refused with 429 RATE_LIMITED, by key role", ["role"])
RELAY_RESENT = Counter("orders_relay_resent_total", "Job messages sent again by the relay (committed but never sent)")
EVENTS_DISPATCHED = Counter("orders_events_dispatched_total", "Events positioned by the webhook dispatcher")
WEBHOOK_ATTEMPTS = Counter(
    "orders_webhook_attempts_total",
    "Webhook delivery attempts by outcome: succeeded, retrying (will be tried again), failed (gave up)",
    ["outcome"],
)


def host_registry(extra: list[Collector] | None = None) -> CollectorRegistry:
    """This host's processes (multiprocess mode) or this process's metrics, plus ``extra``."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        for collector in list(REGISTRY._collector_to_names):  # the process's own metrics
            registry.register(collector)
    for collector in extra or []:
        registry.register(collector)
    return registry


def render(extra: list[Collector] | None = None) -> bytes:
    """The exposition text: this host's processes (multiprocess mode) plus ``extra`` collectors."""
    return generate_latest(host_registry(extra))


def start_metrics_server(port: int, host: str = "0.0.0.0") -> None:
    """Serve this host's metrics over HTTP from a daemon thread (a worker host has no web process).

    Without ``PROMETHEUS_MULTIPROC_DIR`` only the calling process would be seen, not the pool's
    children that run the tasks; ``python -m workers`` sets it to a fresh directory when
    ``WORKER_METRICS_PORT`` is set and it is not.
    """
    start_http_server(port, addr=host, registry=host_registry())
