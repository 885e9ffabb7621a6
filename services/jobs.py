"""Jobs: the durable side of every queued task (outbox row, progress, result, error).

The use case that queues work calls :func:`add_job` inside its own transaction and hands the
returned :class:`JobRef` to the caller, which sends the message only after the commit. Workers
move a job through ``queued → running → succeeded | failed`` with the functions below.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from models import Database, Job
from models.ids import new_id
from models.types import utcnow
from services.errors import DomainError, TaskNotFound
from services.principal import Principal

JOBS = Job.__table__
QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
FINISHED = (SUCCEEDED, FAILED)

# Parent job types whose children are gathered into the parent's result by the last child to
# finish: type -> "module:function(session, parent_job) -> result". Named, not imported, so the
# job service depends on no use case.
GATHERERS: dict[str, str] = {
    "bulk_cancel": "services.bulk_cancel:gather_results",
}


@dataclass(frozen=True)
class JobRef:
    """What the sender needs to publish a job's message: nothing but ids and names."""

    job_id: str
    task_name: str
    queue: str


@dataclass(frozen=True)
class JobOutcome:
    """What a job handler may return instead of a bare result.

    ``send``: jobs its transaction queued (refunds, children), sent by the runner after commit.
    ``finished=False``: the job stays ``running`` (a parent whose children will finish it).
    """

    result: Any = None
    send: Sequence[JobRef] = ()
    finished: bool = True


@dataclass(frozen=True)
class JobView:
    id: str
    type: str
    state: str
    progress_current: int
    progress_total: int
    result: Any
    error: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


def add_job(
    session: Session,
    *,
    job_type: str,
    task_name: str,
    queue: str,
    args: dict[str, Any],
    owner: Principal,
    order_id: str | None = None,
    request_id: str | None = None,
    customer_id: str | None = None,
    expires_at: datetime | None = None,
    progress_total: int = 0,
) -> JobRef:
    """Insert a ``queued`` job in the caller's transaction."""
    job = Job(
        id=new_id("task"),
        type=job_type,
        task_name=task_name,
        queue=queue,
        args=args,
        owner_key_id=owner.key_id,
        owner_customer_id=customer_id if customer_id is not None else owner.customer_id,
        order_id=order_id,
        state=QUEUED,
        progress_current=0,
        progress_total=progress_total,
        request_id=request_id,
        send_count=0,
        attempts=0,
        created_at=utcnow(),
        expires_at=expires_at,
    )
    session.add(job)
    return JobRef(job_id=job.id, task_name=task_name, queue=queue)


def _view(job: Job) -> JobView:
    return JobView(
        id=job.id,
        type=job.type,
        state=job.state,
        progress_current=job.progress_current,
        progress_total=job.progress_total,
        result=job.result,
        error=job.error,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def get_job(db: Database, principal: Principal, job_id: str) -> JobView:
    """A job the caller may see; another customer's job is indistinguishable from none."""
    with db.reader() as session:
        job = session.get(Job, job_id)
        if job is None or not principal.can_see_customer(job.owner_customer_id):
            raise TaskNotFound(details=[{"taskId": job_id}])
        return _view(job)


def finished_among(db: Database, job_ids: Sequence[str]) -> set[str]:
    """Which of ``job_ids`` have finished: one query for every ``Prefer: wait`` a process holds.

    No authorization here: it only tells a waiting request when to look again through :func:`get_job`.
    """
    if not job_ids:
        return set()
    with db.reader() as session:
        rows = session.execute(select(Job.id).where(Job.id.in_(list(job_ids)), Job.state.in_(FINISHED)))
        return {row[0] for row in rows}


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
        return ClaimedJob(job.id, job.type, dict(job.args), job.request_id, job.state, job.attempts)


# How long a finished job stays pollable before housekeeping deletes it (unless set earlier).
JOB_RETENTION = timedelta(days=7)


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
        _count_child(session, row.parent_id)
    return True


@dataclass(frozen=True)
class AtomicRun:
    """What :func:`run_atomically` did: ``missing``, ``skipped`` (already finished) or ``finished``."""

    state: str
    outcome: JobOutcome
    error: dict[str, Any] | None = None
    request_id: str | None = None
    job_type: str | None = None


AtomicWork = Callable[[Session, dict[str, Any]], Any]


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
                value = work(session, dict(claimed.args))
            outcome = value if isinstance(value, JobOutcome) else JobOutcome(value)
        except DomainError as exc:
            error, outcome = exc.as_dict(), JobOutcome()
        _finish_in(session, job_id, result=outcome.result, error=error)
        return AtomicRun("finished", outcome, error, claimed.request_id, claimed.type)


def _count_child(session: Session, parent_id: str) -> None:
    """One more child done: an atomic increment; the one that completes the set finalizes the parent."""
    counted = session.connection().execute(_COUNT, {"job_id": parent_id}).first()
    if counted is None or counted.progress_current < counted.progress_total:
        return
    parent = session.get(Job, parent_id)
    assert parent is not None
    module_name, _, function_name = GATHERERS[counted.type].partition(":")
    gather = getattr(importlib.import_module(module_name), function_name)
    session.execute(
        update(Job)
        .where(Job.id == parent_id, Job.state.not_in(FINISHED))
        .values(
            state=SUCCEEDED,
            result=gather(session, parent),
            finished_at=utcnow(),
            expires_at=func.coalesce(Job.expires_at, utcnow() + JOB_RETENTION),
        )
        .execution_options(synchronize_session=False)
    )


def set_progress(db: Database, job_id: str, current: int, total: int) -> None:
    with db.transaction() as session:
        session.execute(update(Job).where(Job.id == job_id).values(progress_current=current, progress_total=total))


class ProgressReporter:
    """Throttles progress writes: one write per ``every_rows`` rows or ``every_seconds``, whichever
    comes first (and always the first and the last), never one per row."""

    def __init__(
        self,
        sink: Callable[[int, int], None],
        *,
        every_rows: int = 5000,
        every_seconds: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sink = sink
        self._every_rows = max(1, every_rows)
        self._every_seconds = every_seconds
        self._clock = clock
        self._last_rows: int | None = None
        self._last_time = 0.0
        self.writes = 0

    def update(self, current: int, total: int, *, force: bool = False) -> bool:
        """Report ``current`` of ``total`` if it is time to; True when a write was made."""
        now = self._clock()
        if not force and self._last_rows is not None:
            if current - self._last_rows < self._every_rows and now - self._last_time < self._every_seconds:
                return False
            if current == self._last_rows:
                return False
        self._sink(current, total)
        self._last_rows, self._last_time = current, now
        self.writes += 1
        return True


def set_expiry(db: Database, job_id: str, expires_at: datetime) -> None:
    with db.transaction() as session:
        session.execute(update(Job).where(Job.id == job_id).values(expires_at=expires_at))


def stale_queued_jobs(db: Database, older_than: timedelta, limit: int = 500) -> list[JobRef]:
    """Jobs still ``queued`` after a grace period: their message may never have been sent."""
    cutoff = utcnow() - older_than
    with db.reader() as session:
        rows = session.execute(
            select(Job.id, Job.task_name, Job.queue)
            .where(
                Job.state == QUEUED,
                Job.created_at < cutoff,
                or_(Job.sent_at.is_(None), Job.sent_at < cutoff),
            )
            .order_by(Job.created_at)
            .limit(limit)
        ).all()
    return [JobRef(job_id=row.id, task_name=row.task_name, queue=row.queue) for row in rows]


def note_resent(db: Database, job_ids: list[str], chunk: int = 1000) -> None:
    if not job_ids:
        return
    now = utcnow()
    with db.transaction() as session:
        for start in range(0, len(job_ids), chunk):
            session.execute(
                update(Job)
                .where(Job.id.in_(job_ids[start : start + chunk]))
                .values(send_count=Job.send_count + 1, sent_at=now)
                .execution_options(synchronize_session=False)
            )
