"""Webhook tasks on their own ``webhooks`` queue: the dispatcher and one task per delivery.

- ``webhooks.dispatch`` positions new events and writes their deliveries
  (``services.webhooks.dispatch``), then starts each affected endpoint's next delivery. Processes
  that commit events nudge it (:class:`DispatchNudge`: at most one message per 50 ms per process,
  sent from a background thread, so a request or a task never waits for it); beat runs it every
  ``WEBHOOK_SWEEP_INTERVAL_SECONDS`` with ``sweep=True``, which also starts every free endpoint's
  due delivery (a retry whose time came, a message lost, a worker killed mid-delivery).
- ``webhooks.deliver`` makes one attempt of one delivery, then goes on with the same endpoint's
  next due ones for up to half a second, and hands the next to a message of its own (after a
  failure it sends itself again at the retry time when that is near; the sweep otherwise). Every
  delivery is claimed and recorded on its own, and an endpoint has one attempt in flight at a
  time, so a receiver that hangs holds one worker for the timeout while the others deliver
  elsewhere.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import redis
import structlog
from celery import Celery, shared_task
from celery.signals import task_postrun

from config.metrics import EVENTS_DISPATCHED, WEBHOOK_ATTEMPTS
from services.webhooks.delivery import BUSY, Attempt, DeliveryPolicy, finish_delivery, next_due, send, start_delivery
from services.webhooks.dispatch import dispatch_events, due_deliveries
from tasks.context import WorkerContext, worker_context
from workers.queues import WEBHOOKS

log = structlog.get_logger(__name__)

DISPATCH, DELIVER = "webhooks.dispatch", "webhooks.deliver"
MAX_BATCHES = 20  # per dispatch run (10,000 events); a fuller backlog continues on the next run
COUNTDOWN_LIMIT_SECONDS = 300  # nearer retries are sent with a countdown; later ones by the sweep


def _send_delivery(app: Celery, settings: Any, delivery_id: str, *, countdown: float | None = None) -> None:
    timeout = settings.webhook_timeout_seconds
    app.send_task(
        DELIVER,
        args=[delivery_id],
        queue=settings.queue_name(WEBHOOKS),
        countdown=countdown,
        soft_time_limit=int(2 * timeout + 5),
        time_limit=int(2 * timeout + 10),
        retry=False,
    )


def send_delivery(app: Celery, settings: Any, delivery_id: str) -> bool:
    """Start a delivery now (after commit); False if the broker refused (the sweep starts it)."""
    try:
        _send_delivery(app, settings, delivery_id)
        return True
    except Exception as exc:
        log.warning("delivery message not sent; the sweep will start it", error=repr(exc))
        return False


def _start_all(worker: WorkerContext, delivery_ids: list[str]) -> int:
    sent = 0
    try:
        for delivery_id in delivery_ids:
            _send_delivery(dispatch.app, worker.settings, delivery_id)
            sent += 1
    except Exception as exc:  # broker down: the sweep starts them later
        log.warning("delivery messages not sent; the sweep will start them", error=repr(exc))
    return sent


def _start_dispatch(worker: WorkerContext) -> None:
    try:
        dispatch.app.send_task(DISPATCH, queue=worker.settings.queue_name(WEBHOOKS), expires=60, retry=False)
    except Exception as exc:
        log.warning("dispatch message not sent; the sweep will dispatch", error=repr(exc))


@shared_task(name=DISPATCH)
def dispatch(sweep: bool = False) -> int:
    """Dispatch new events; with ``sweep``, also start every free endpoint's due delivery."""
    worker = worker_context()
    window = timedelta(seconds=worker.settings.webhook_retry_window_seconds)
    endpoints: set[str] = set()
    events = 0
    for _ in range(MAX_BATCHES):
        done = dispatch_events(worker.db, retry_window=window)
        events += done.events
        endpoints |= done.endpoints
        if not done.more:
            break
    EVENTS_DISPATCHED.inc(events)
    heads = due_deliveries(worker.db, endpoints=None if sweep else endpoints)
    started = _start_all(worker, heads)
    if done.more:  # a backlog beyond this run's batches: go on with it now
        _start_dispatch(worker)
    if events or started:
        log.info("events dispatched", events=events, endpoints=len(endpoints), started=started, sweep=sweep)
    return events


# After a success, the same task goes on with the endpoint's next due deliveries (each still
# claimed, sent and recorded on its own), up to this many or this long, then hands the next one to
# a message: an endpoint with a backlog is not paced by a broker round trip per event, and no
# endpoint holds a worker for long (a failure, a hang's timeout included, ends the run at once).
RUN_DELIVERIES, RUN_SECONDS = 50, 0.5


@shared_task(name=DELIVER)
def deliver(delivery_id: str) -> None:
    """Attempts of one endpoint's deliveries, starting with ``delivery_id`` (a duplicate or early
    message finds it not due and stops)."""
    worker = worker_context()
    policy = DeliveryPolicy.from_settings(worker.settings)
    deadline = time.monotonic() + RUN_SECONDS
    current = delivery_id
    for _ in range(RUN_DELIVERIES):
        endpoint_id, free, succeeded = _attempt(worker, policy, current)
        if endpoint_id is None or not free:
            return  # finished elsewhere, in flight, or backing off: its retry or the sweep goes on
        following = next_due(worker.db, endpoint_id)
        if following is None or following == current:
            return
        if not succeeded or time.monotonic() >= deadline:
            break  # after a failure, or past the run's time: the next one in a message of its own
        current = following
    _start_all(worker, [following])


def _attempt(worker: WorkerContext, policy: DeliveryPolicy, delivery_id: str) -> tuple[str | None, bool, bool]:
    """One attempt: its endpoint (None: nothing to go on with), whether the endpoint may take its
    next delivery now, and whether this one succeeded."""
    started = start_delivery(worker.db, delivery_id, policy)
    if not isinstance(started, Attempt):
        log.debug("webhook delivery not started", delivery_id=delivery_id, reason=started.reason)
        if started.reason != BUSY and started.endpoint_id is not None:
            return started.endpoint_id, True, True  # it waits behind an earlier one: go on with that
        return None, False, False
    outcome = send(started, policy)
    finished = finish_delivery(worker.db, started, outcome, policy)
    WEBHOOK_ATTEMPTS.labels(
        "succeeded" if finished.succeeded else "retrying" if finished.retry_in is not None else "failed"
    ).inc()
    log.info(
        "webhook delivered" if finished.succeeded else "webhook delivery failed",
        delivery_id=delivery_id,
        endpoint_id=started.endpoint_id,
        attempt=started.attempt,
        status_code=outcome.status_code,
        error=(outcome.error or {}).get("code"),
        duration_ms=outcome.duration_ms,
        retry_in=finished.retry_in,
    )
    if finished.retry_in is not None and finished.retry_in <= COUNTDOWN_LIMIT_SECONDS:
        try:
            _send_delivery(deliver.app, worker.settings, delivery_id, countdown=finished.retry_in)
        except Exception as exc:
            log.warning("retry message not sent; the sweep will retry", error=repr(exc))
    return started.endpoint_id, finished.endpoint_free, finished.succeeded


class DispatchNudge:
    """Turns "events were committed" into a ``webhooks.dispatch`` message sent by a daemon thread
    (the caller only sets a flag), at most one per ``interval`` per process.

    ``claim`` coalesces across processes (a Redis key with a short expiry, :func:`dispatch_nudge`):
    when another process sent a message within the window, this one tries again after it, so every
    nudge is followed by a dispatch message sent after it, while the whole fleet sends about one
    per window however many processes commit events.
    """

    def __init__(
        self, send_message: Callable[[], None], claim: Callable[[], bool] = lambda: True, interval: float = 0.05
    ) -> None:
        self._send = send_message
        self._claim = claim
        self._interval = interval
        self._wanted = threading.Event()
        self._pid: int | None = None
        self._lock = threading.Lock()

    def __call__(self) -> None:
        if self._pid != os.getpid():
            self._start()
        self._wanted.set()

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._wanted = threading.Event()
            self._wanted.set()
            threading.Thread(target=self._run, name="webhooks-nudge", daemon=True).start()
            self._pid = os.getpid()

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            try:
                if self._claim():
                    self._send()
                else:
                    self._wanted.set()  # another process's message may predate our commit: ours follows
            except Exception as exc:  # the broker is down: beat's sweep dispatches later
                log.warning("dispatch nudge not sent", error=repr(exc))
            time.sleep(self._interval)


NUDGE_WINDOW_MS = 100


def dispatch_nudge(app: Celery, settings: Any, redis_client: redis.Redis | None = None) -> DispatchNudge:
    """A nudge that sends ``webhooks.dispatch`` with ``app``, at most one per 100 ms for the whole
    fleet when ``redis_client`` is given (a message left unrun for a minute is dropped: a later
    nudge or the sweep does the same work)."""
    queue = settings.queue_name(WEBHOOKS)
    key = settings.queue_name("orders:webhooks:nudge")

    def claim() -> bool:
        if redis_client is None:
            return True
        try:
            return bool(redis_client.set(key, b"1", px=NUDGE_WINDOW_MS, nx=True))
        except redis.RedisError:
            return True  # no coalescing without Redis; the message itself may still go out

    return DispatchNudge(lambda: app.send_task(DISPATCH, queue=queue, expires=60, retry=False), claim)


_WORKER_NUDGE: list[DispatchNudge] = []


@task_postrun.connect
def _nudge_after_task(task: Any = None, **_: Any) -> None:
    """A task of another queue may have committed events (a payment, an export, a finished job)."""
    if task is None or str(getattr(task, "name", "")).startswith("webhooks."):
        return
    if not _WORKER_NUDGE:
        worker = worker_context()
        _WORKER_NUDGE.append(dispatch_nudge(task.app, worker.settings, worker.redis))
    _WORKER_NUDGE[0]()
