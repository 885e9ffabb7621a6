"""The unfinished jobs at a glance, for ``/metrics``: how many are queued or running per queue, how
old the oldest queued one is, and how many running ones have outlived their lease (stuck).

Two queries on the ``state`` indexes, bounded by the unfinished rows (finished jobs, the bulk of
the table, are not read)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select

from models import Database, Job
from models.types import utcnow
from services.jobs.leases import stalled_count
from services.jobs.states import QUEUED, RUNNING


@dataclass(frozen=True)
class Backlog:
    unfinished: dict[tuple[str, str], int]  # (queue, state) -> jobs
    oldest_queued_seconds: dict[str, float]  # queue -> age of its oldest queued job
    stalled: int


def backlog(db: Database, lease: timedelta) -> Backlog:
    now = utcnow()
    with db.reader() as session:
        rows = session.execute(
            select(Job.queue, Job.state, func.count(), func.min(Job.created_at))
            .where(Job.state.in_((QUEUED, RUNNING)))
            .group_by(Job.queue, Job.state)
        ).all()
    unfinished = {(row[0], row[1]): int(row[2]) for row in rows}
    oldest = {row[0]: max(0.0, (now - row[3]).total_seconds()) for row in rows if row[1] == QUEUED and row[3]}
    return Backlog(unfinished, oldest, stalled_count(db, lease))
