"""The one way a task runs a job: claim, run the service, record the outcome.

Redelivered messages for finished jobs do nothing. A handler may return a
:class:`services.jobs.JobOutcome` to have follow-up jobs sent after its commit, or to leave its job
running for children to finish. Domain errors finish the job as failed with
their code; transient errors retry with exponential backoff, and after the last retry the job
fails rather than staying ``running`` forever.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import structlog
from celery import Task
from sqlalchemy.exc import OperationalError

from config.metrics import TASK_DURATION, TASKS
from config.settings import Settings
from models import Database
from services.jobs.machine import AtomicWork, claim_job, finish_job, run_atomically, run_batch_atomically
from services.jobs.outbox import JobOutcome, JobRef, note_resent
from services.kernel.errors import DomainError, TransientError
from services.payments.gateways.registry import Gateways
from tasks.context import WorkerContext, worker_context
from tasks.heartbeat import heartbeat
from tasks.notices import announce
from tasks.progress_notices import progress_reporter

log = structlog.get_logger(__name__)

TRANSIENT = (TransientError, OperationalError)


@dataclass(frozen=True)
class JobContext:
    """What a handler gets beside its args: the process's worker context, which job and attempt
    this is (a redelivered message starts a new one), the request that queued it (for history rows
    and logs), and a way to report progress (unthrottled: the handler throttles, e.g. with
    ``services.jobs.progress.ProgressReporter``)."""

    job_id: str
    attempt: int
    request_id: str | None
    worker: WorkerContext
    report_progress: Callable[[int, int], None]

    @property
    def db(self) -> Database:
        return self.worker.db

    @property
    def gateways(self) -> Gateways:
        return self.worker.gateways

    @property
    def settings(self) -> Settings:
        return self.worker.settings


JobHandler = Callable[[JobContext, dict[str, Any]], Any]


@dataclass
class RunRecord:
    """What a run ended as, for the task metrics (filled in as the run goes)."""

    job_type: str = "unknown"
    result: str = "skipped"


def run_job(task: Task, job_id: str, handler: JobHandler) -> None:
    """Run ``handler(job, args)`` and count the outcome by job type, with its duration."""
    with _recorded() as record:
        _run(task, job_id, handler, record)


@contextmanager
def _recorded() -> Iterator[RunRecord]:
    """Count the run by job type and outcome, and observe its duration, however it ends."""
    started = time.perf_counter()
    record = RunRecord()
    try:
        yield record
    finally:
        TASKS.labels(record.job_type, record.result).inc()
        TASK_DURATION.labels(record.job_type).observe(time.perf_counter() - started)


def _run(task: Task, job_id: str, handler: JobHandler, record: RunRecord) -> None:
    worker = worker_context()
    db = worker.db
    claimed = claim_job(db, job_id)
    if claimed is None:
        log.warning("job not found; message dropped", job_id=job_id)
        return
    record.job_type = claimed.type
    structlog.contextvars.bind_contextvars(request_id=claimed.request_id, task_id=job_id, job_type=claimed.type)
    try:
        if claimed.state != "running":
            log.info("job already finished; redelivery ignored", state=claimed.state)
            return
        log.info("job started", attempt=claimed.attempts)
        job = JobContext(job_id, claimed.attempts, claimed.request_id, worker, progress_reporter(worker, job_id))
        try:
            result = handler(job, claimed.args)
        except DomainError as exc:
            finish_job(db, job_id, error=exc.as_dict())
            announce(worker.redis, [job_id, claimed.parent_id])
            record.result = "failed"
            log.info("job failed", code=exc.code)
            return
        except TRANSIENT as exc:
            _retry_or_fail(task, worker, job_id, exc, record)
            return
        except Exception as exc:
            _crashed(worker, job_id, exc, record)
            return
        outcome = result if isinstance(result, JobOutcome) else JobOutcome(result)
        if outcome.finished:
            finish_job(db, job_id, result=outcome.result)
            announce(worker.redis, [job_id, claimed.parent_id])
            record.result = "succeeded"
            log.info("job succeeded")
        else:
            record.result = "waiting"
            log.info("job waiting for its children")
        _send_follow_ups(worker, outcome.send, claimed.request_id)
    finally:
        structlog.contextvars.unbind_contextvars("job_type")


def run_job_atomically(task: Task, job_id: str, work: AtomicWork) -> None:
    """Like :func:`run_job` for work that takes the job's own transaction (see
    :func:`services.jobs.run_atomically`): claim, work and outcome commit together."""
    with _recorded() as record:
        _run_atomically(task, job_id, work, record)


def _run_atomically(task: Task, job_id: str, work: AtomicWork, record: RunRecord) -> None:
    worker = worker_context()
    db = worker.db
    try:
        run = run_atomically(db, job_id, work)
    except TRANSIENT as exc:
        _retry_or_fail(task, worker, job_id, exc, record)
        return
    except Exception as exc:
        _crashed(worker, job_id, exc, record)
        return
    record.job_type = run.job_type or "unknown"
    if run.state == "missing":
        log.warning("job not found; message dropped", job_id=job_id)
        return
    structlog.contextvars.bind_contextvars(request_id=run.request_id, task_id=job_id, job_type=run.job_type)
    try:
        if run.state == "skipped":
            log.info("job already finished; redelivery ignored")
            return
        announce(worker.redis, [job_id, run.parent_id])
        if run.error is not None:
            record.result = "failed"
            log.info("job failed", code=run.error["code"])
        else:
            record.result = "succeeded"
            log.info("job succeeded")
        _send_follow_ups(worker, run.outcome.send, run.request_id)
    finally:
        structlog.contextvars.unbind_contextvars("job_type")


def run_batch(task: Task, job_ids: list[str], work: AtomicWork) -> None:
    """Run a batch message's jobs (see :func:`services.jobs.machine.run_batch_atomically`)."""
    with _recorded() as record:
        worker = worker_context()
        record.job_type = "batch"
        beat = heartbeat()  # the message's id is the batch's: renew the leases of its jobs instead
        for job_id in job_ids:
            beat.started(job_id)
        try:
            _run_batch(task, worker, job_ids, work, record)
        finally:
            for job_id in job_ids:
                beat.finished(job_id)


def _run_batch(task: Task, worker: WorkerContext, job_ids: list[str], work: AtomicWork, record: RunRecord) -> None:
    try:
        run = run_batch_atomically(worker.db, job_ids, work, transient=TRANSIENT)
    except TRANSIENT as exc:
        if task.request.retries < (task.max_retries or 0):
            record.result = "retried"
            log.warning("transient failure in a batch; retrying", error=repr(exc), jobs=len(job_ids))
            raise task.retry(exc=exc, countdown=min(2**task.request.retries, 60)) from exc
        unavailable = {"code": "SERVICE_UNAVAILABLE", "message": str(exc), "details": []}
        for job_id in job_ids:  # finishes only those still unfinished
            finish_job(worker.db, job_id, error=unavailable)
        announce(worker.redis, job_ids)
        record.result = "failed"
        return
    if run.runs:
        record.job_type = run.runs[0].job_type or "batch"
    record.result = "failed" if any(one.error for one in run.runs) else "succeeded"
    announce(worker.redis, [*job_ids, *run.parents])
    log.info("batch finished", jobs=len(run.runs), completed_parents=len(run.completed_parents))
    follow_ups = [ref for one in run.runs for ref in one.outcome.send]
    _send_follow_ups(worker, follow_ups, run.runs[0].request_id if run.runs else None)


def _retry_or_fail(task: Task, worker: WorkerContext, job_id: str, exc: BaseException, record: RunRecord) -> None:
    """A transient failure: retry with exponential backoff, or fail the job once retries run out
    (never leave it ``running`` forever)."""
    if task.request.retries < (task.max_retries or 0):
        record.result = "retried"
        log.warning("transient failure; retrying", error=repr(exc), retry=task.request.retries + 1)
        raise task.retry(exc=exc, countdown=min(2**task.request.retries, 60)) from exc
    finish_job(worker.db, job_id, error={"code": "SERVICE_UNAVAILABLE", "message": str(exc), "details": []})
    announce(worker.redis, [job_id])
    record.result = "failed"
    log.error("transient failure; retries exhausted", error=repr(exc))


def _crashed(worker: WorkerContext, job_id: str, exc: BaseException, record: RunRecord) -> None:
    """A bug: log it with its trace, and fail the job without exposing the trace to the client."""
    logging.getLogger(__name__).exception("job crashed")
    error = {"code": "INTERNAL_ERROR", "message": "The task failed unexpectedly.", "details": []}
    finish_job(worker.db, job_id, error=error)
    announce(worker.redis, [job_id])
    record.result = "crashed"
    log.error("job crashed", error=repr(exc))


def _send_follow_ups(worker: WorkerContext, refs: Sequence[JobRef], request_id: str | None) -> None:
    """After the handler's commit: jobs it queued (refunds, children) go out now; any the broker
    refuses stay ``queued`` for the relay."""
    if refs:
        note_resent(worker.db, worker.sender.send_all(refs, request_id=request_id))
