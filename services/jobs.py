"""Jobs: the durable side of every queued task (outbox row, progress, result, error).

The use case that queues work calls :func:`add_job` inside its own transaction and hands the
returned :class:`JobRef` to the caller, which sends the message only after the commit. Workers
move a job through ``queued → running → succeeded | failed`` with the functions below.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from models import Database, Job
from models.ids import new_id
from models.types import utcnow
from services.errors import TaskNotFound
from services.principal import Principal

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
FINISHED = (SUCCEEDED, FAILED)


@dataclass(frozen=True)
class JobRef:
    """What the sender needs to publish a job's message: nothing but ids and names."""

    job_id: str
    task_name: str
    queue: str


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
        progress_total=0,
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


def finish_job(db: Database, job_id: str, *, result: Any = None, error: dict[str, Any] | None = None) -> None:
    """Record the outcome once; a second finish of the same job is ignored."""
    now = utcnow()
    with db.transaction() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state.not_in(FINISHED))
            .values(
                state=FAILED if error is not None else SUCCEEDED,
                result=result,
                error=error,
                finished_at=now,
                expires_at=func.coalesce(Job.expires_at, now + JOB_RETENTION),
            )
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


def note_resent(db: Database, job_ids: list[str]) -> None:
    if not job_ids:
        return
    with db.transaction() as session:
        session.execute(update(Job).where(Job.id.in_(job_ids)).values(send_count=Job.send_count + 1, sent_at=utcnow()))
