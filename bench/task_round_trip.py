"""Task round trip: ``POST /api/orders`` until ``GET /api/tasks/{taskId}`` (a long poll:
``Prefer: wait=10``) answers ``succeeded``, sequentially, beside two floors:

- the *placed floor*: ``POST /floor/round-trip`` on :mod:`bench.floor_app` (the same JSON parsed,
  order and item inserted, a bare no-op task sent) and the client awaiting that task on a Redis
  result backend (:mod:`bench.floor_celery`, bare worker): the same pipeline with no application;
- the *bare task*: the no-op alone, sent and awaited, with no HTTP and no database.

Sequential on purpose: this measures latency through the whole pipeline (API commit, publish,
worker claim and finish, the notice that wakes the long poll), not throughput.
"""

from __future__ import annotations

import statistics
import sys
import time

import requests

from bench import floor_celery
from bench.harness import ORDER_BODY, Figure, Stack, Workload, percentile

NAME = "task round trip"
WAIT_SECONDS = 10


def service_round_trip(session: requests.Session, base: str) -> float:
    """Seconds from sending the order to the long poll's answer that reads ``succeeded``."""
    started = time.perf_counter()
    created = session.post(base + "/api/orders", data=ORDER_BODY, timeout=10)
    if created.status_code != 201:
        raise RuntimeError(f"POST /api/orders answered {created.status_code}: {created.text[:300]}")
    task_url = f"{base}/api/tasks/{created.json()['taskId']}"
    state = session.get(task_url, headers={"Prefer": f"wait={WAIT_SECONDS}"}, timeout=WAIT_SECONDS + 5).json()["state"]
    if state != "succeeded":
        raise RuntimeError(f"checkout task {state} after a {WAIT_SECONDS}s long poll: {task_url}")
    return time.perf_counter() - started


def floor_post(session: requests.Session, floor_url: str) -> str:
    """Place an order on the floor app; the id of the no-op task it sent."""
    created = session.post(floor_url + "/floor/round-trip", data=ORDER_BODY, timeout=10)
    if created.status_code != 201:
        raise RuntimeError(f"floor POST answered {created.status_code}: {created.text[:300]}")
    return str(created.json()["taskId"])


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
    with (
        stack.process(argv, "floor-celery-worker"),
        stack.web("bench.floor_app:get_app()", "round-trip-floor") as floor_url,
        requests.Session() as session,
    ):
        bare = floor_celery.round_trips(stack.settings.redis_url, count)
        floor = floor_celery.placed_round_trips(stack.settings.redis_url, lambda: floor_post(session, floor_url), count)
    notes = {"count": count, "long_poll_seconds": WAIT_SECONDS, "service_max_ms": max(service) * 1000}
    median_ms, p99_ms = statistics.median(service) * 1000, percentile(service, 99) * 1000
    return [
        Figure(NAME, "median ms", median_ms, statistics.median(floor) * 1000, False, notes),
        Figure(NAME, "p99 ms", p99_ms, percentile(floor, 99) * 1000, False),
        Figure(NAME, "median ms vs the bare task", median_ms, statistics.median(bare) * 1000, False),
    ]


def workloads() -> list[Workload]:
    return [Workload(NAME, run, "POST an order, long-poll its task until succeeded; sequential")]
