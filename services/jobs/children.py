"""Parent jobs and their children: each child counts itself into its parent's progress, once,
and the child that completes the count gathers every child's outcome into the parent's result."""

from __future__ import annotations

import importlib

from sqlalchemy import bindparam, func, update
from sqlalchemy.orm import Session

from models import Job
from models.types import utcnow
from services.jobs.states import FINISHED, JOB_RETENTION, JOBS, SUCCEEDED

# Parent job types whose children are gathered into the parent's result by the last child to
# finish: type -> "module:function(session, parent_job) -> result". Named, not imported, so the
# job service depends on no use case.
GATHERERS: dict[str, str] = {
    "bulk_cancel": "services.changes.bulk_cancel:gather_results",
}


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
