"""The Celery app factory used by the worker, beat, and the API (to send messages)."""

from __future__ import annotations

from typing import Any

import structlog
from celery import Celery
from celery.signals import task_postrun, task_prerun

from config.settings import Settings
from workers import runtime
from workers.queues import ALL_QUEUES, MAINTENANCE

TASK_MODULES = ["tasks.checkout", "tasks.exports", "tasks.maintenance", "tasks.orders", "tasks.payments"]

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


def _every(task: str, seconds: int) -> dict[str, Any]:
    """A maintenance job every ``seconds``; a message not run within one interval is dropped
    (the next one does the same work), so a backlog never piles up copies of a job."""
    return {"task": task, "schedule": float(seconds), "options": {"queue": MAINTENANCE, "expires": seconds}}


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every beat job: each is idempotent and bounded, so firing it twice or late is harmless."""
    return {
        "relay-queued-jobs": _every("maintenance.relay_queued_jobs", settings.relay_interval_seconds),
        "housekeeping": _every("maintenance.housekeeping", settings.housekeeping_interval_seconds),
        "reconcile-payments": _every("maintenance.reconcile_payments", settings.reconcile_interval_seconds),
        "expire-unpaid-orders": _every("maintenance.expire_unpaid_orders", settings.expire_orders_interval_seconds),
        "settle-payments": _every("maintenance.settle_payments", settings.settlement_interval_seconds),
    }


def create_celery_app(settings: Settings) -> Celery:
    """Build the app; creating it opens no connection (Celery connects lazily)."""
    runtime.configure(settings)
    app = Celery("orders", broker=settings.redis_url, include=TASK_MODULES, set_as_current=True)
    app.conf.update(
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_default_queue=ALL_QUEUES[1],
        task_queues=None,
        task_create_missing_queues=True,
        task_soft_time_limit=settings.task_soft_time_limit_seconds,
        task_time_limit=settings.task_time_limit_seconds,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker waits out a Redis outage instead of exiting
        broker_connection_timeout=settings.broker_connect_timeout_seconds,
        broker_transport_options={
            "visibility_timeout": settings.broker_visibility_timeout_seconds,
            **restore_options(settings.broker_visibility_timeout_seconds),
            "socket_connect_timeout": settings.broker_connect_timeout_seconds,
            "socket_timeout": 10,
            "retry_on_timeout": True,
        },
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        enable_utc=True,
        timezone="UTC",
        beat_scheduler="redbeat.RedBeatScheduler",
        redbeat_redis_url=settings.redis_url,
        redbeat_key_prefix="orders:redbeat",
        beat_max_loop_interval=5,
        redbeat_lock_timeout=settings.beat_lock_timeout_seconds,
        beat_schedule=beat_schedule(settings),
    )
    return app


def _request_id_of(request: Any) -> str | None:
    headers = getattr(request, "headers", None) or {}
    return getattr(request, "request_id", None) or headers.get("request_id")


@task_prerun.connect
def _on_task_prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    """Every log line of a task names the request that queued it (``X-Request-Id``)."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=_request_id_of(task.request) if task else None, task_id=task_id)


@task_postrun.connect
def _on_task_postrun(**_: Any) -> None:
    structlog.contextvars.clear_contextvars()
