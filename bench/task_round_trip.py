"""Task round trip: ``POST /api/orders`` until a poll of ``GET /api/tasks/{taskId}`` (every 5 ms)
sees ``succeeded``, sequentially, vs a bare Celery no-op sent and awaited on a Redis result
backend with a bare worker (:mod:`bench.floor_celery`).

Sequential on purpose: this measures latency through the whole pipeline (API commit, publish,
worker claim and finish, poll), not throughput. The 5 ms poll interval adds about 2.5 ms on
average to the service's figure; the floor waits on a subscription and pays no such tax.
"""

from __future__ import annotations

import statistics
import sys
import time

import requests

from bench import floor_celery
from bench.harness import ORDER_BODY, Figure, Stack, Workload, percentile

NAME = "task round trip"
POLL_SECONDS = 0.005
TIMEOUT_SECONDS = 30.0


def service_round_trip(session: requests.Session, base: str) -> float:
    """Seconds from sending the order to the first poll that reads ``succeeded``."""
    started = time.perf_counter()
    created = session.post(base + "/api/orders", data=ORDER_BODY, timeout=10)
    if created.status_code != 201:
        raise RuntimeError(f"POST /api/orders answered {created.status_code}: {created.text[:300]}")
    task_url = f"{base}/api/tasks/{created.json()['taskId']}"
    deadline = started + TIMEOUT_SECONDS
    while time.perf_counter() < deadline:
        state = session.get(task_url, timeout=10).json()["state"]
        if state == "succeeded":
            return time.perf_counter() - started
        if state == "failed":
            raise RuntimeError(f"checkout task failed: {task_url}")
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"task not succeeded after {TIMEOUT_SECONDS}s: {task_url}")


def run(stack: Stack) -> list[Figure]:
    count = stack.options.round_trips
    stack.settle()
    with requests.Session() as session:
        session.headers.update(stack.headers)
        for _ in range(5):  # warm-up: connections, worker pools, prepared code paths
            service_round_trip(session, stack.service_url)
        service = [service_round_trip(session, stack.service_url) for _ in range(count)]
    argv = [sys.executable, "-m", "bench.floor_celery", "worker", "--concurrency", "1", "--pool", "prefork"]
    argv += ["--queues", floor_celery.QUEUE, "--loglevel", "WARNING", "--without-gossip", "--without-mingle"]
    with stack.process(argv, "floor-celery-worker"):
        floor = floor_celery.round_trips(stack.settings.redis_url, count)
    notes = {"count": count, "poll_seconds": POLL_SECONDS, "service_max_ms": max(service) * 1000}
    return [
        Figure(NAME, "median ms", statistics.median(service) * 1000, statistics.median(floor) * 1000, False, notes),
        Figure(NAME, "p99 ms", percentile(service, 99) * 1000, percentile(floor, 99) * 1000, False),
    ]


def workloads() -> list[Workload]:
    return [Workload(NAME, run, "POST an order, poll its task every 5 ms until succeeded; sequential")]
