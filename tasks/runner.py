"""The one way a task runs a job: claim, run the service, record the outcome.

Redelivered messages for finished jobs do nothing. A handler may return a
:class:`services.jobs.JobOutcome` to have follow-up jobs sent after its commit, or to leave its job
running for children to finish. Domain errors finish the job as failed with
their code; transient errors retry with exponential backoff, and after the last retry the job
fails rather than staying ``running`` forever.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import structlog
from celery import Task
from sqlalchemy.exc import OperationalError

from models import Database
from services.errors import DomainError, TransientError
from services.jobs import AtomicWork, JobOutcome, claim_job, finish_job, note_resent, run_atomically
from tasks.dispatch import TaskSender
from workers import runtime

log = structlog.get_logger(__name__)

JobHandler = Callable[[Database, dict[str, Any]], Any]
TRANSIENT = (TransientError, OperationalError)


def run_job(task: Task, job_id: str, handler: JobHandler) -> None:
    db = runtime.database()
    claimed = claim_job(db, job_id)
    if claimed is None:
        log.warning("job not found; message dropped", job_id=job_id)
        return
    structlog.contextvars.bind_contextvars(request_id=claimed.request_id, task_id=job_id, job_type=claimed.type)
    # (the request id also arrives as a message header; the job row is the durable copy)
    try:
        if claimed.state != "running":
            log.info("job already finished; redelivery ignored", state=claimed.state)
            return
        log.info("job started", attempt=claimed.attempts)
        try:
            result = handler(db, claimed.args)
        except DomainError as exc:
            finish_job(db, job_id, error=exc.as_dict())
            log.info("job failed", code=exc.code)
            return
        except TRANSIENT as exc:
            if task.request.retries < (task.max_retries or 0):
                log.warning("transient failure; retrying", error=repr(exc), retry=task.request.retries + 1)
                raise task.retry(exc=exc, countdown=min(2**task.request.retries, 60)) from exc
            finish_job(db, job_id, error={"code": "SERVICE_UNAVAILABLE", "message": str(exc), "details": []})
            log.error("transient failure; retries exhausted", error=repr(exc))
            return
        except Exception as exc:
            logging.getLogger(__name__).exception("job crashed")
            finish_job(
                db, job_id, error={"code": "INTERNAL_ERROR", "message": "The task failed unexpectedly.", "details": []}
            )
            log.error("job crashed", error=repr(exc))
            return
        outcome = result if isinstance(result, JobOutcome) else JobOutcome(result)
        if outcome.finished:
            finish_job(db, job_id, result=outcome.result)
            log.info("job succeeded")
        else:
            log.info("job waiting for its children")
        if outcome.send:
            # After the handler's commit: jobs it queued (refunds, children) go out now; any the
            # broker refuses stay ``queued`` for the relay.
            note_resent(db, TaskSender(task.app).send_all(outcome.send, request_id=claimed.request_id))
    finally:
        structlog.contextvars.unbind_contextvars("job_type")


def run_job_atomically(task: Task, job_id: str, work: AtomicWork) -> None:
    """Like :func:`run_job` for work that takes the job's own transaction (see
    :func:`services.jobs.run_atomically`): claim, work and outcome commit together."""
    db = runtime.database()
    try:
        run = run_atomically(db, job_id, work)
    except TRANSIENT as exc:
        if task.request.retries < (task.max_retries or 0):
            log.warning("transient failure; retrying", error=repr(exc), retry=task.request.retries + 1)
            raise task.retry(exc=exc, countdown=min(2**task.request.retries, 60)) from exc
        finish_job(db, job_id, error={"code": "SERVICE_UNAVAILABLE", "message": str(exc), "details": []})
        log.error("transient failure; retries exhausted", error=repr(exc))
        return
    except Exception as exc:
        logging.getLogger(__name__).exception("job crashed")
        finish_job(
            db, job_id, error={"code": "INTERNAL_ERROR", "message": "The task failed unexpectedly.", "details": []}
        )
        log.error("job crashed", error=repr(exc))
        return
    if run.state == "missing":
        log.warning("job not found; message dropped", job_id=job_id)
        return
    structlog.contextvars.bind_contextvars(request_id=run.request_id, task_id=job_id, job_type=run.job_type)
    try:
        if run.state == "skipped":
            log.info("job already finished; redelivery ignored")
            return
        if run.error is not None:
            log.info("job failed", code=run.error["code"])
        else:
            log.info("job succeeded")
        if run.outcome.send:
            note_resent(db, TaskSender(task.app).send_all(run.outcome.send, request_id=run.request_id))
    finally:
        structlog.contextvars.unbind_contextvars("job_type")
