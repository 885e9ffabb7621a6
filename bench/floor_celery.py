"""The floor for the task round trip: a bare Celery no-op task and its result, through Redis.

No job row, no polling over HTTP: the client sends ``floor.noop`` and waits for the result on a
Redis result backend (Celery subscribes to it, so nothing is polled). :func:`round_trips` is the
bare task alone; :func:`placed_round_trips` starts each one with the floor's order placement over
HTTP (``POST /floor/round-trip`` on :mod:`bench.floor_app`: parse, insert, send), as the service's
round trip starts with ``POST /api/orders``. Whatever the service's round trip (POST an order, the
worker runs the checkout job, the client long-polls the task) costs beyond this is the price of
the application.

``python -m bench.floor_celery worker --concurrency 1`` runs the bare worker; the harness starts it
with ``REDIS_URL`` set and stops it afterwards.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable

from celery import Celery

QUEUE = "floor"
TASK = "floor.noop"


def create_app(redis_url: str) -> Celery:
    """The bare app: Redis broker and result backend, JSON, one queue; built on demand."""
    app = Celery("floor", broker=redis_url, backend=redis_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_default_queue=QUEUE,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        result_expires=600,
    )

    @app.task(name=TASK)
    def noop(*args: object) -> None:
        return None

    return app


def round_trips(redis_url: str, count: int, *, timeout: float = 10.0) -> list[float]:
    """``count`` sequential send-and-wait round trips; seconds each."""
    app = create_app(redis_url)
    try:
        # The first waits for the worker to come up and warms connections and the subscription.
        app.send_task(TASK, queue=QUEUE).get(timeout=60)
        durations = []
        for _ in range(count):
            started = time.perf_counter()
            app.send_task(TASK, queue=QUEUE).get(timeout=timeout)
            durations.append(time.perf_counter() - started)
        return durations
    finally:
        app.close()


def placed_round_trips(redis_url: str, post: Callable[[], str], count: int, *, timeout: float = 10.0) -> list[float]:
    """``count`` sequential round trips through the floor's HTTP placement: ``post`` places an
    order on :mod:`bench.floor_app` (which sends the no-op with the task id it answers) and the
    client waits for that task's result; seconds each."""
    app = create_app(redis_url)
    try:
        app.AsyncResult(post()).get(timeout=60)  # the worker is up; connections and subscription warm
        durations = []
        for _ in range(count):
            started = time.perf_counter()
            app.AsyncResult(post()).get(timeout=timeout)
            durations.append(time.perf_counter() - started)
        return durations
    finally:
        app.close()


def main(argv: list[str]) -> int:
    """``worker …`` starts the bare worker; ``probe N`` prints the median of N round trips."""
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    if argv[:1] == ["probe"]:
        durations = round_trips(redis_url, int(argv[1]) if len(argv) > 1 else 100)
        print(f"median round trip {statistics.median(durations) * 1000:.2f} ms over {len(durations)}")
        return 0
    app = create_app(redis_url)
    return int(app.start(argv=argv) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
