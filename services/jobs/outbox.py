"""The outbox: a job row written in the same transaction as the change it belongs to.

The use case that queues work calls :func:`add_job` inside its own transaction and hands the
returned :class:`JobRef` to the caller, which sends the message only after the commit. A job whose
message never left (broker down, process killed between commit and send) is found again by
:func:`stale_queued_jobs` and sent by the relay beat job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, or_, select, update
from sqlalchemy.orm import Session

from models import Database, Job
from models.ids import new_id
from models.types import utcnow
from services.jobs.kinds import JobKind
from services.jobs.states import QUEUED
from services.kernel.principal import Principal


@dataclass(frozen=True)
class JobRef:
    """What the sender needs to publish a job's message: nothing but ids and names."""

    job_id: str
    task_name: str
    queue: str

    @classmethod
    def of(cls, kind: JobKind, job_id: str) -> JobRef:
        return cls(job_id=job_id, task_name=kind.task_name, queue=kind.queue)


@dataclass(frozen=True)
class JobOutcome:
    """What a job handler may return instead of a bare result.

    ``send``: jobs its transaction queued (refunds, children), sent by the runner after commit.
    ``finished=False``: the job stays ``running`` (a parent whose children will finish it).
    """

    result: Any = None
    send: Sequence[JobRef] = ()
    finished: bool = True


JOB_ROW_COLUMNS = frozenset(
    {
        "id",
        "type",
        "task_name",
        "queue",
        "args",
        "owner_key_id",
        "owner_customer_id",
        "order_id",
        "parent_id",
        "state",
        "progress_current",
        "progress_total",
        "request_id",
        "send_count",
        "attempts",
        "created_at",
        "expires_at",
    }
)


def job_row(
    kind: JobKind,
    *,
    args: dict[str, Any],
    owner: Principal,
    order_id: str | None,
    request_id: str | None,
    customer_id: str | None,
    expires_at: datetime | None = None,
    progress_total: int = 0,
    parent_id: str | None = None,
    now: datetime,
) -> dict[str, Any]:
    """The columns of a new ``queued`` job of ``kind``: one definition for single jobs and children."""
    return {
        "id": new_id("task"),
        "type": kind.type,
        "task_name": kind.task_name,
        "queue": kind.queue,
        "args": args,
        "owner_key_id": owner.key_id,
        "owner_customer_id": customer_id if customer_id is not None else owner.customer_id,
        "order_id": order_id,
        "parent_id": parent_id,
        "state": QUEUED,
        "progress_current": 0,
        "progress_total": progress_total,
        "request_id": request_id,
        "send_count": 0,
        "attempts": 0,
        "created_at": now,
        "expires_at": expires_at,
    }


def add_job(
    session: Session,
    kind: JobKind,
    *,
    args: dict[str, Any],
    owner: Principal,
    order_id: str | None = None,
    request_id: str | None = None,
    customer_id: str | None = None,
    expires_at: datetime | None = None,
    progress_total: int = 0,
) -> JobRef:
    """Insert a ``queued`` job of ``kind`` in the caller's transaction."""
    row = job_row(
        kind,
        args=args,
        owner=owner,
        order_id=order_id,
        request_id=request_id,
        customer_id=customer_id,
        expires_at=expires_at,
        progress_total=progress_total,
        now=utcnow(),
    )
    session.add(Job(**row))
    return JobRef.of(kind, row["id"])


INSERT_JOB = insert(Job.__table__)


def insert_job(
    conn: Connection,
    kind: JobKind,
    *,
    args: dict[str, Any],
    owner: Principal,
    order_id: str | None = None,
    request_id: str | None = None,
    customer_id: str | None = None,
    now: datetime | None = None,
) -> JobRef:
    """:func:`add_job` for use cases written in Core: one INSERT on the caller's connection."""
    row = job_row(
        kind,
        args=args,
        owner=owner,
        order_id=order_id,
        request_id=request_id,
        customer_id=customer_id,
        now=now or utcnow(),
    )
    conn.execute(INSERT_JOB, row)
    return JobRef.of(kind, row["id"])


@dataclass(frozen=True)
class Child:
    """One child job to write: its args and the order it acts on."""

    args: dict[str, Any]
    order_id: str | None


def add_children(
    session: Session,
    parent: JobRef,
    kind: JobKind,
    children: Sequence[Child],
    *,
    owner: Principal,
    request_id: str | None,
) -> None:
    """Insert every child of ``parent`` in one INSERT (10,000 children in one round trip)."""
    session.flush()  # the parent row first (children name it)
    now = utcnow()
    rows = [
        job_row(
            kind,
            args=child.args,
            owner=owner,
            order_id=child.order_id,
            request_id=request_id,
            customer_id=None,
            parent_id=parent.job_id,
            now=now,
        )
        for child in children
    ]
    session.execute(insert(Job), rows)


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
