"""The Celery app factory used by the worker, beat, and the API (to send messages)."""

from __future__ import annotations

import time
from functools import cached_property
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import structlog
from celery import Celery
from celery.signals import task_postrun, task_prerun

from config.metrics import QUEUE_WAIT
from config.settings import Settings
from workers import runtime
from workers.queues import ALL_QUEUES, MAINTENANCE, WEBHOOKS

TASK_MODULES = [
    "tasks.checkout",
    "tasks.exports",
    "tasks.heartbeat",
    "tasks.maintenance",
    "tasks.orders",
    "tasks.payments",
    "tasks.webhooks",
]

# Longest task time limit (exports) is an hour; a message not acked within the visibility
# timeout is delivered again, so ``broker_visibility_timeout_seconds`` (default 2 h) must stay
# above every time limit. A worker that dies mid-task (SIGKILL, power loss) leaves its message
# unacked: it is delivered again once the timeout has passed, by any worker's periodic sweep or
# a starting worker. Tests shorten it for their own workers to see a redelivery quickly.


def restore_options(visibility_timeout: int) -> dict[str, int]:
    """How often kombu sweeps for unacked messages past the timeout (default: every ~100 s)."""
    interval = min(10, max(1, visibility_timeout // 4))
    throttle = max(1, min(10, visibility_timeout // (4 * interval)))
    return {"unacked_restore_interval": interval, "unacked_restore_throttle": throttle}


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every beat job: each is idempotent and bounded, so firing it twice or late is harmless."""
    queue = settings.queue_name(MAINTENANCE)

    def every(task: str, seconds: int) -> dict[str, Any]:
        """A maintenance job every ``seconds``; a message not run within one interval is dropped
        (the next one does the same work), so a backlog never piles up copies of a job."""
        return {"task": task, "schedule": float(seconds), "options": {"queue": queue, "expires": seconds}}

    return {
        "relay-queued-jobs": every("maintenance.relay_queued_jobs", settings.relay_interval_seconds),
        "recover-stalled-jobs": every("maintenance.recover_stalled_jobs", settings.recovery_interval_seconds),
        "housekeeping": every("maintenance.housekeeping", settings.housekeeping_interval_seconds),
        "reconcile-payments": every("maintenance.reconcile_payments", settings.reconcile_interval_seconds),
        "expire-unpaid-orders": every("maintenance.expire_unpaid_orders", settings.expire_orders_interval_seconds),
        "settle-payments": every("maintenance.settle_payments", settings.settlement_interval_seconds),
        # Events not dispatched yet (their nudge lost) and deliveries due (a backoff over, a lost
        # message, a worker killed mid-delivery): on the webhooks queue, beside the deliveries.
        "sweep-webhooks": {
            "task": "webhooks.dispatch",
            "kwargs": {"sweep": True},
            "schedule": float(settings.webhook_sweep_interval_seconds),
            "options": {
                "queue": settings.queue_name(WEBHOOKS),
                "expires": settings.webhook_sweep_interval_seconds,
            },
        },
    }


def redis_url_and_options(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without its credentials, and the credentials as client options.

    RedBeat connects with ``redbeat_redis_url`` and ``redbeat_redis_options``; Celery's
    ``inspect conf`` masks a setting's value only when its key looks secret (or is the broker URL),
    so a password inside ``redbeat_redis_url`` would be shown to anyone who can inspect a worker.
    Under ``redbeat_redis_options`` it is masked (its key is ``password``).
    """
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url, {}
    options: dict[str, str] = {}
    if parts.username:
        options["username"] = unquote(parts.username)
    if parts.password is not None:
        options["password"] = unquote(parts.password)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), options


def _transport_options(settings: Settings) -> dict[str, Any]:
    """Redis transport options (RabbitMQ redelivers an unacked message when its consumer's
    connection drops, so it has no visibility timeout; see docs/deploy.md for its consumer_timeout)."""
    if not settings.broker_is_redis:
        return {"connect_timeout": settings.broker_connect_timeout_seconds}
    return {
        "visibility_timeout": settings.broker_visibility_timeout_seconds,
        **restore_options(settings.broker_visibility_timeout_seconds),
        "socket_connect_timeout": settings.broker_connect_timeout_seconds,
        "socket_timeout": 10,
        "retry_on_timeout": True,
    }


class OrdersCelery(Celery):
    """Celery whose worker and beat announce themselves as log lines (JSON when ``LOG_FORMAT`` is
    json) instead of printing banners, and whose worker consumes the prefixed queue names."""

    @cached_property
    def Worker(self) -> Any:  # noqa: N802 (Celery's name)
        return self.subclass_with_self("workers.programs:Worker")

    @cached_property
    def Beat(self) -> Any:  # noqa: N802 (Celery's name)
        return self.subclass_with_self("workers.programs:Beat")


def create_celery_app(settings: Settings) -> OrdersCelery:
    """Build the app; creating it opens no connection (Celery connects lazily)."""
    runtime.configure(settings)
    app = OrdersCelery("orders", broker=settings.celery_broker_url, include=TASK_MODULES, set_as_current=True)
    redbeat_url, redbeat_options = redis_url_and_options(settings.redis_url)
    app.conf.update(
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_default_queue=settings.queue_name(ALL_QUEUES[1]),
        task_queues=None,
        task_create_missing_queues=True,
        task_soft_time_limit=settings.task_soft_time_limit_seconds,
        task_time_limit=settings.task_time_limit_seconds,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker waits out a Redis outage instead of exiting
        broker_connection_timeout=settings.broker_connect_timeout_seconds,
        broker_transport_options=_transport_options(settings),
        # SIGTERM (remapped to a cold shutdown by ``python -m workers``): running tasks get this long
        # to finish, then they are cancelled and their unacked messages go back to the queue.
        worker_soft_shutdown_timeout=settings.worker_soft_shutdown_seconds,
        # Remote control and events on exchanges of this deployment's own (one broker, many).
        control_exchange=settings.queue_name("celery"),
        event_exchange=settings.queue_name("celeryev"),
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        enable_utc=True,
        timezone="UTC",
        beat_scheduler="workers.beat:TickingScheduler",
        redbeat_redis_url=redbeat_url,
        redbeat_redis_options={
            **redbeat_options,
            "socket_connect_timeout": settings.broker_connect_timeout_seconds,
            "socket_timeout": 10,
        },
        redbeat_key_prefix=settings.queue_name("orders:redbeat"),
        beat_max_loop_interval=5,
        redbeat_lock_timeout=settings.beat_lock_timeout_seconds,
        beat_schedule=beat_schedule(settings),
    )
    return app


def _request_id_of(request: Any) -> str | None:
    headers = getattr(request, "headers", None) or {}
    return getattr(request, "request_id", None) or headers.get("request_id")


def _observe_queue_wait(request: Any) -> None:
    """How long the message waited between its send and this start (``orders_queue_wait_seconds``)."""
    headers = getattr(request, "headers", None) or {}
    sent_at = getattr(request, "sent_at", None) or headers.get("sent_at")
    if not isinstance(sent_at, int | float):
        return  # beat's messages and messages sent before the header existed
    routing = (getattr(request, "delivery_info", None) or {}).get("routing_key") or "unknown"
    queue = str(routing).removeprefix(runtime.settings().queue_prefix)
    QUEUE_WAIT.labels(queue).observe(max(0.0, time.time() - float(sent_at)))


@task_prerun.connect
def _on_task_prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    """Every log line of a task names the request that queued it (``X-Request-Id``)."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=_request_id_of(task.request) if task else None, task_id=task_id)
    if task is not None:
        _observe_queue_wait(task.request)


@task_postrun.connect
def _on_task_postrun(**_: Any) -> None:
    structlog.contextvars.clear_contextvars()
