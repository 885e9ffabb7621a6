"""Leases on running jobs: how a job whose worker died is found in seconds, not hours.

A worker claims a job by setting it ``running`` with ``heartbeat_at = now`` (the claim statement in
``machine``), and while the job runs, that worker process renews ``heartbeat_at`` every
``lease / 3`` seconds once the job has run that long (``tasks/heartbeat.py``: jobs shorter than
that cost no statement beyond their claim and finish). A ``running`` job whose heartbeat is older
than the lease therefore has no live worker: the worker was SIGKILLed, lost its host, or its
process was OOM-killed. :func:`recover_expired` (a beat job every ``RECOVERY_INTERVAL_SECONDS``) puts
such jobs back to ``queued`` and hands them to the caller to send again.

The broker would redeliver the dead worker's unacked message too, but only after its visibility
timeout (2 h on Redis, longer than the longest task); that late copy finds the job finished and
does nothing. Jobs are idempotent (payments reuse their gateway idempotency key, exports write
under a name of their own per attempt), so even a worker that was only stalled past its lease and
then carries on does no harm: the second run reaches the same outcome and the first finish wins.

Not recovered: a parent job that stays ``running`` while its children finish it (it has child
rows, and its own run ended long ago), and jobs claimed by a worker without heartbeats
(``heartbeat_at`` NULL, e.g. during a rolling upgrade): those wait for the visibility timeout.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import bindparam, exists, func, select, update
from sqlalchemy.orm import aliased

from models import Database, Job
from models.types import utcnow
from services.jobs.outbox import JobRef
from services.jobs.states import JOBS, QUEUED, RUNNING

DEFAULT_LEASE = timedelta(seconds=30)

_RENEW = (
    update(JOBS)
    .where(JOBS.c.id.in_(bindparam("job_ids", expanding=True)), JOBS.c.state == RUNNING)
    .values(heartbeat_at=bindparam("now", type_=JOBS.c.heartbeat_at.type))
)


def renew(db: Database, job_ids: Sequence[str]) -> int:
    """Extend the leases of jobs this process is running (one statement for all of them)."""
    if not job_ids:
        return 0
    with db.transaction() as session:
        return session.connection().execute(_RENEW, {"job_ids": list(job_ids), "now": utcnow()}).rowcount


def _expired(cutoff: object):  # noqa: ANN202 (a SQL expression)
    child = aliased(Job)
    return (
        (Job.state == RUNNING)
        & (Job.heartbeat_at < cutoff)
        & ~exists(select(child.id).where(child.parent_id == Job.id).correlate(Job))
    )


def recover_expired(db: Database, lease: timedelta = DEFAULT_LEASE, *, limit: int = 500) -> list[JobRef]:
    """Put ``running`` jobs whose lease ran out back to ``queued``; returns them for sending.

    The UPDATE re-checks the condition, so two sweeps at once recover each job once.
    """
    cutoff = utcnow() - lease
    with db.transaction() as session:
        ids = session.scalars(select(Job.id).where(_expired(cutoff)).order_by(Job.heartbeat_at).limit(limit)).all()
        if not ids:
            return []
        rows = session.execute(
            update(Job)
            .where(Job.id.in_(ids), Job.state == RUNNING, Job.heartbeat_at < cutoff)
            .values(state=QUEUED, heartbeat_at=None)
            .returning(Job.id, Job.task_name, Job.queue)
            .execution_options(synchronize_session=False)
        ).all()
    return [JobRef(job_id=row.id, task_name=row.task_name, queue=row.queue) for row in rows]


def stalled_count(db: Database, lease: timedelta = DEFAULT_LEASE) -> int:
    """How many running jobs have outlived their lease right now (the ``orders_jobs_stalled`` gauge)."""
    with db.reader() as session:
        return int(session.scalar(select(func.count()).select_from(Job).where(_expired(utcnow() - lease))) or 0)
