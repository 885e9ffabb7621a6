"""What clients poll: a job as ``GET /api/tasks/{id}`` shows it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select

from models import Database, Job
from services.jobs.states import FINISHED
from services.kernel.errors import TaskNotFound
from services.kernel.principal import Principal


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


_JOBS = Job.__table__
_VIEW_COLUMNS = [
    _JOBS.c[name]
    for name in (
        "id",
        "type",
        "state",
        "progress_current",
        "progress_total",
        "result",
        "error",
        "created_at",
        "started_at",
        "finished_at",
    )
]
_JOB_VIEW = select(*_VIEW_COLUMNS, _JOBS.c.owner_customer_id).where(_JOBS.c.id == bindparam("job_id"))
_WIDTH = len(_VIEW_COLUMNS)


def get_job(db: Database, principal: Principal, job_id: str) -> JobView:
    """A job the caller may see; another customer's job is indistinguishable from none.

    One statement on the autocommit read engine: clients poll this."""
    with db.read_engine.connect() as conn:
        row = conn.execute(_JOB_VIEW, {"job_id": job_id}).first()
    if row is None or not principal.can_see_customer(row.owner_customer_id):
        raise TaskNotFound(details=[{"taskId": job_id}])
    return JobView(*row[:_WIDTH])


def finished_among(db: Database, job_ids: Sequence[str]) -> set[str]:
    """Which of ``job_ids`` have finished: one query for every ``Prefer: wait`` a process holds.

    No authorization here: it only tells a waiting request when to look again through :func:`get_job`.
    """
    if not job_ids:
        return set()
    with db.reader() as session:
        rows = session.execute(select(Job.id).where(Job.id.in_(list(job_ids)), Job.state.in_(FINISHED)))
        return {row[0] for row in rows}
