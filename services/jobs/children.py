"""Parent jobs and their children: each child counts itself into its parent's progress, once,
and the child that completes the count gathers every child's outcome into the parent's result."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from models import Job
from models.types import utcnow
from services.events.record import TASK_FINISHED, add_event
from services.jobs.kinds import JobKind
from services.jobs.states import FINISHED, JOB_RETENTION, JOBS, SUCCEEDED

Gatherer = Callable[[Session, Job], Any]
# Parent kind -> the function that writes its result from its children's outcomes. Filled by
# :func:`gathers` where each parent kind's use case is defined (a worker imports it with its task).
_GATHERERS: dict[str, Gatherer] = {}


def gathers(kind: JobKind) -> Callable[[Gatherer], Gatherer]:
    """Declare ``function(session, parent_job) -> result`` as the gatherer of ``kind``'s children."""

    def register(function: Gatherer) -> Gatherer:
        _GATHERERS[kind.type] = function
        return function

    return register


_COUNT = (
    update(JOBS)
    .where(JOBS.c.id == bindparam("job_id"))
    .values(progress_current=JOBS.c.progress_current + 1)
    .returning(JOBS.c.progress_current, JOBS.c.progress_total, JOBS.c.type)
)


def count_child(session: Session, parent_id: str) -> None:
    """One more child done: an atomic increment; the one that completes the set finalizes the parent."""
    counted = session.connection().execute(_COUNT, {"job_id": parent_id}).first()
    if counted is None or counted.progress_current < counted.progress_total:
        return
    _complete(session, parent_id, counted.type)


_LOCK_PARENT = (
    select(JOBS.c.progress_total, JOBS.c.type, JOBS.c.state).where(JOBS.c.id == bindparam("job_id")).with_for_update()
)
_FINISHED_CHILDREN = (
    select(func.count()).select_from(JOBS).where(JOBS.c.parent_id == bindparam("job_id"), JOBS.c.state.in_(FINISHED))
)
_SET_PROGRESS = update(JOBS).where(JOBS.c.id == bindparam("job_id")).values(progress_current=bindparam("done"))


def recount_children(session: Session, parent_id: str) -> bool:
    """After a batch of children finished (each in its own transaction): the parent's progress is
    how many children have finished, and the parent completes when all have; True if it did.

    The parent row is locked first and the children counted after, in a statement of their own:
    two batches finishing the last children at once queue on the lock, and the second counts
    what the first committed, so exactly one of them completes the parent. A count, not an
    increment, so a batch run again (its message redelivered after a crash) changes nothing.
    """
    conn = session.connection()
    parent = conn.execute(_LOCK_PARENT, {"job_id": parent_id}).first()
    if parent is None or parent.state in FINISHED:
        return False
    done = int(conn.execute(_FINISHED_CHILDREN, {"job_id": parent_id}).scalar_one())
    conn.execute(_SET_PROGRESS, {"job_id": parent_id, "done": done})
    if done < parent.progress_total:
        return False
    _complete(session, parent_id, parent.type)
    return True


def _complete(session: Session, parent_id: str, parent_type: str) -> None:
    """Write the parent's result from its children's outcomes and finish it (once)."""
    parent = session.get(Job, parent_id)
    assert parent is not None
    gather = _GATHERERS.get(parent_type)
    if gather is None:
        raise LookupError(f"no gatherer declared for {parent_type!r} jobs (import the module that declares it)")
    finished = session.execute(
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
    if finished.rowcount == 1:
        data = {"taskId": parent_id, "type": parent_type, "state": SUCCEEDED, "orderId": None, "errorCode": None}
        add_event(session.connection(), TASK_FINISHED, order_id=None, customer_id=parent.owner_customer_id, data=data)
