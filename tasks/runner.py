"""The one way a task runs a job: claim, run the service, record the outcome.

Redelivered messages for finished jobs do nothing. Domain errors finish the job as failed with
their code; transient errors retry with exponential backoff, and after the last retry the job
fails rather than staying ``running`` forever.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import structlog
from celery import Task
from sqlalchemy.exc import OperationalError

from config.metrics import TASK_DURATION, TASKS
from models import Database
from services.errors import DomainError, TransientError
from services.jobs import claim_job, finish_job, set_progress
from workers import runtime

log = structlog.get_logger(__name__)

TRANSIENT = (TransientError, OperationalError)


@dataclass(frozen=True)
class JobContext:
    """What a long-running handler may need beyond its args: who it is, which attempt this is
    (a redelivered message starts a new one), and a way to report progress (unthrottled: the
    handler throttles, e.g. with ``services.jobs.ProgressReporter``)."""

    job_id: str
    attempt: int
    report_progress: Callable[[int, int], None]


JobHandler = Callable[[Database, dict[str, Any]], Any]
ContextJobHandler = Callable[[Database, dict[str, Any], JobContext], Any]


@dataclass
class Outcome:
    """What a run ended as, for the task metrics (filled in as the run goes)."""

    job_type: str = "unknown"
    result: str = "skipped"


def run_job(task: Task, job_id: str, handler: JobHandler | ContextJobHandler, *, with_context: bool = False) -> None:
    """Run ``handler(db, args)`` (or ``handler(db, args, context)`` when ``with_context``) and count
    the outcome by job type, with its duration."""
    started = time.perf_counter()
    outcome = Outcome()
    try:
        _run(task, job_id, handler, outcome, with_context=with_context)
    finally:
        TASKS.labels(outcome.job_type, outcome.result).inc()
        TASK_DURATION.labels(outcome.job_type).observe(time.perf_counter() - started)


def _run(
    task: Task, job_id: str, handler: JobHandler | ContextJobHandler, outcome: Outcome, *, with_context: bool
) -> None:
    db = runtime.database()
    claimed = claim_job(db, job_id)
    if claimed is None:
        log.warning("job not found; message dropped", job_id=job_id)
        return
    outcome.job_type = claimed.type
    structlog.contextvars.bind_contextvars(request_id=claimed.request_id, task_id=job_id, job_type=claimed.type)
    try:
        if claimed.state != "running":
            log.info("job already finished; redelivery ignored", state=claimed.state)
            return
        log.info("job started", attempt=claimed.attempts)
        try:
            if with_context:
                context = JobContext(job_id, claimed.attempts, partial(set_progress, db, job_id))
                result = handler(db, claimed.args, context)  # type: ignore[call-arg]
            else:
                result = handler(db, claimed.args)  # type: ignore[call-arg]
        except DomainError as exc:
            finish_job(db, job_id, error=exc.as_dict())
            outcome.result = "failed"
            log.info("job failed", code=exc.code)
            return
        except TRANSIENT as exc:
            if task.request.retries < (task.max_retries or 0):
                outcome.result = "retried"
                log.warning("transient failure; retrying", error=repr(exc), retry=task.request.retries + 1)
                raise task.retry(exc=exc, countdown=min(2**task.request.retries, 60)) from exc
            finish_job(db, job_id, error={"code": "SERVICE_UNAVAILABLE", "message": str(exc), "details": []})
            outcome.result = "failed"
            log.error("transient failure; retries exhausted", error=repr(exc))
            return
        except Exception as exc:
            logging.getLogger(__name__).exception("job crashed")
            error = {"code": "INTERNAL_ERROR", "message": "The task failed unexpectedly.", "details": []}
            finish_job(db, job_id, error=error)
            outcome.result = "crashed"
            log.error("job crashed", error=repr(exc))
            return
        finish_job(db, job_id, result=result)
        outcome.result = "succeeded"
        log.info("job succeeded")
    finally:
        structlog.contextvars.unbind_contextvars("job_type")
