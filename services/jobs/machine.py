"""Moving a job through ``queued → running → succeeded | failed``: one statement to claim, one to
finish, and :func:`run_atomically` for work that commits with its job's own transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, func, select, update
from sqlalchemy.orm import Session

from models import Database, Job
from models.types import utcnow
from services.jobs.children import count_child
from services.jobs.outbox import JobOutcome
from services.jobs.states import FAILED, FINISHED, JOB_RETENTION, JOBS, RUNNING, SUCCEEDED
from services.kernel.errors import DomainError


@dataclass(frozen=True)
class ClaimedJob:
    id: str
    type: str
    args: dict[str, Any]
    request_id: str | None
    state: str
    attempts: int


def claim_job(db: Database, job_id: str) -> ClaimedJob | None:
    """Mark a job running (a redelivered message for a finished job changes nothing).

    Returns ``None`` for an unknown id. A finished job is returned as it is; the caller skips it.
    """
    with db.transaction() as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job is None:
            return None
        if job.state not in FINISHED:
            job.state = RUNNING
            job.attempts += 1
            job.started_at = job.started_at or utcnow()
            job.heartbeat_at = utcnow()  # the lease starts (services/jobs/leases.py)
        return ClaimedJob(job.id, job.type, dict(job.args), job.request_id, job.state, job.attempts)


# How long a finished job stays pollable before housekeeping deletes it (unless set earlier).


def finish_job(db: Database, job_id: str, *, result: Any = None, error: dict[str, Any] | None = None) -> bool:
    """Record the outcome once; a second finish of the same job is ignored (returns False)."""
    with db.transaction() as session:
        return _finish_in(session, job_id, result=result, error=error)


# The statements every child job runs, built once (Core, bound parameters): building them per call
# cost as much as the work of a small job.
_UNFINISHED = and_(JOBS.c.state != SUCCEEDED, JOBS.c.state != FAILED)
_CLAIM = (
    update(JOBS)
    .where(JOBS.c.id == bindparam("job_id"), _UNFINISHED)
    .values(
        state=RUNNING,
        attempts=JOBS.c.attempts + 1,
        started_at=func.coalesce(JOBS.c.started_at, bindparam("now", type_=JOBS.c.started_at.type)),
        heartbeat_at=bindparam("now", type_=JOBS.c.heartbeat_at.type),  # the lease starts (leases.py)
    )
    .returning(JOBS.c.args, JOBS.c.request_id, JOBS.c.type)
)
_FINISH = (
    update(JOBS)
    .where(JOBS.c.id == bindparam("job_id"), _UNFINISHED)
    .values(
        state=bindparam("new_state"),
        result=bindparam("new_result", type_=JOBS.c.result.type),
        error=bindparam("new_error", type_=JOBS.c.error.type),
        finished_at=bindparam("now", type_=JOBS.c.finished_at.type),
        expires_at=func.coalesce(JOBS.c.expires_at, bindparam("retain_until", type_=JOBS.c.expires_at.type)),
    )
    .returning(JOBS.c.parent_id)
)
_COUNT = (
    update(JOBS)
    .where(JOBS.c.id == bindparam("job_id"))
    .values(progress_current=JOBS.c.progress_current + 1)
    .returning(JOBS.c.progress_current, JOBS.c.progress_total, JOBS.c.type)
)


def _finish_in(session: Session, job_id: str, *, result: Any, error: dict[str, Any] | None) -> bool:
    """Finish a job in the caller's transaction, exactly once.

    A child job counts itself into its parent's progress in the same transaction, so each child
    is counted exactly once however often its message is delivered; the child that brings the
    count to the total gathers every child's outcome into the parent's result.
    """
    values = {"new_state": FAILED if error is not None else SUCCEEDED, "new_result": result, "new_error": error}
    now = utcnow()
    row = (
        session.connection()
        .execute(_FINISH, {"job_id": job_id, "now": now, "retain_until": now + JOB_RETENTION, **values})
        .first()
    )
    if row is None:
        return False
    if row.parent_id is not None:
        count_child(session, row.parent_id)
    return True


@dataclass(frozen=True)
class AtomicRun:
    """What :func:`run_atomically` did: ``missing``, ``skipped`` (already finished) or ``finished``."""

    state: str
    outcome: JobOutcome
    error: dict[str, Any] | None = None
    request_id: str | None = None
    job_type: str | None = None


# work(session, args, request_id): the request id of the request that queued the job, for history rows.
AtomicWork = Callable[[Session, dict[str, Any], str | None], Any]


def run_atomically(db: Database, job_id: str, work: AtomicWork) -> AtomicRun:
    """Claim the job, do its work and record its outcome in one transaction.

    The work's effects and the job's ``finished`` state commit together, so a redelivered message
    finds the job finished and does nothing (and a child is counted into its parent once). A domain
    error rolls the work back to a savepoint and records the failure; any other exception rolls
    everything back and propagates (the job stays as it was: the caller retries or fails it).
    """
    with db.transaction() as session:
        claimed = session.connection().execute(_CLAIM, {"job_id": job_id, "now": utcnow()}).first()
        if claimed is None:
            row = session.execute(select(Job.request_id, Job.type).where(Job.id == job_id)).first()
            if row is None:
                return AtomicRun("missing", JobOutcome())
            return AtomicRun("skipped", JobOutcome(), request_id=row.request_id, job_type=row.type)
        error = None
        try:
            with session.begin_nested():
                value = work(session, dict(claimed.args), claimed.request_id)
            outcome = value if isinstance(value, JobOutcome) else JobOutcome(value)
        except DomainError as exc:
            error, outcome = exc.as_dict(), JobOutcome()
        _finish_in(session, job_id, result=outcome.result, error=error)
        return AtomicRun("finished", outcome, error, claimed.request_id, claimed.type)
