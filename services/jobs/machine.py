"""Moving a job through ``queued → running → succeeded | failed``: one statement to claim, one to
finish, and :func:`run_atomically` for work that commits with its job's own transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Text, and_, bindparam, cast, func, insert, literal, select, update
from sqlalchemy.orm import Session

from models import Database, Job
from models.ids import new_id
from models.types import utcnow
from services.events.record import EVENT_COLUMNS, EVENTS, TASK_FINISHED, add_event
from services.jobs.children import count_child, recount_children
from services.jobs.outbox import JobOutcome
from services.jobs.states import FAILED, JOB_RETENTION, JOBS, RUNNING, SUCCEEDED
from services.kernel.errors import DomainError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClaimedJob:
    id: str
    type: str
    args: dict[str, Any]
    request_id: str | None
    state: str
    attempts: int
    parent_id: str | None = None


def claim_job(db: Database, job_id: str) -> ClaimedJob | None:
    """Mark a job running: one statement (a redelivered message for a finished job changes nothing).

    Returns ``None`` for an unknown id. A finished job is returned as it is; the caller skips it.
    """
    with db.autocommit() as conn:
        row = conn.execute(_CLAIM, {"job_id": job_id, "now": utcnow()}).first()
        if row is not None:
            return ClaimedJob(job_id, row.type, dict(row.args), row.request_id, RUNNING, row.attempts, row.parent_id)
        known = conn.execute(_STATE_OF, {"job_id": job_id}).first()  # finished already, or unknown
    if known is None:
        return None
    return ClaimedJob(job_id, known.type, dict(known.args), known.request_id, known.state, known.attempts)


def finish_job(db: Database, job_id: str, *, result: Any = None, error: dict[str, Any] | None = None) -> bool:
    """Record the outcome once (a second finish of the same job is ignored: False).

    One statement for a job without a parent; a child also counts itself into its parent, in the
    same transaction as its finish, so that it is counted exactly once.
    """
    values = _finish_values(result, error)
    if db.write_engine.dialect.name == "postgresql":
        with db.autocommit() as conn:  # the finish and its task.finished event: one statement
            params = {"job_id": job_id, "event_id": new_id("evt"), **values}
            if conn.execute(_FINISH_TOP_LEVEL_WITH_EVENT, params).first() is not None:
                return True
    else:
        with db.connection() as conn:  # SQLite: no data-modifying CTEs; two local statements
            row = conn.execute(_FINISH_TOP_LEVEL, {"job_id": job_id, **values}).first()
            if row is not None:
                _task_finished(conn, job_id, row, values["now"])
                return True
    with db.transaction() as session:  # a child, or finished already, or unknown
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
    .returning(JOBS.c.args, JOBS.c.request_id, JOBS.c.type, JOBS.c.attempts, JOBS.c.parent_id)
)
_STATE_OF = select(JOBS.c.type, JOBS.c.args, JOBS.c.request_id, JOBS.c.state, JOBS.c.attempts).where(
    JOBS.c.id == bindparam("job_id")
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
    .returning(
        JOBS.c.parent_id, JOBS.c.id, JOBS.c.type, JOBS.c.state, JOBS.c.order_id, JOBS.c.owner_customer_id, JOBS.c.error
    )
)
_FINISH_TOP_LEVEL = _FINISH.where(JOBS.c.parent_id.is_(None))


def _finish_with_event() -> Any:
    """PostgreSQL: ``WITH finished AS (UPDATE jobs … RETURNING …) INSERT INTO events SELECT … FROM
    finished``: a top-level job's finish and its ``task.finished`` event in one autocommit statement
    (the same data :func:`_task_finished` writes)."""
    finished = _FINISH_TOP_LEVEL.cte("finished")
    data = func.json_build_object(
        "taskId",
        finished.c.id,
        "type",
        finished.c.type,
        "state",
        finished.c.state,
        "orderId",
        finished.c.order_id,
        "errorCode",
        finished.c.error["code"].as_string(),
    )
    event = insert(EVENTS).from_select(
        EVENT_COLUMNS,
        select(
            bindparam("event_id", type_=EVENTS.c.id.type),
            literal(TASK_FINISHED),
            finished.c.order_id,
            finished.c.owner_customer_id,
            cast(data, Text),
            bindparam("now", type_=EVENTS.c.created_at.type),
        ),
    )
    return select(finished.c.parent_id).add_cte(event.cte("finished_event"))


_FINISH_TOP_LEVEL_WITH_EVENT = _finish_with_event()


def _task_finished(conn: Any, job_id: str, row: Any, now: Any) -> None:
    """``task.finished`` of a top-level job (a bulk cancel's per-order children announce nothing:
    their parent does, and each order its own ``order.cancelled``)."""
    data = {
        "taskId": job_id,
        "type": row.type,
        "state": row.state,
        "orderId": row.order_id,
        "errorCode": (row.error or {}).get("code"),
    }
    add_event(conn, TASK_FINISHED, order_id=row.order_id, customer_id=row.owner_customer_id, data=data, now=now)


def _finish_values(result: Any, error: dict[str, Any] | None) -> dict[str, Any]:
    now = utcnow()
    return {
        "new_state": FAILED if error is not None else SUCCEEDED,
        "new_result": result,
        "new_error": error,
        "now": now,
        "retain_until": now + JOB_RETENTION,
    }


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
    values = _finish_values(result, error)
    row = session.connection().execute(_FINISH, {"job_id": job_id, **values}).first()
    if row is None:
        return False
    if row.parent_id is not None:
        count_child(session, row.parent_id)
    else:
        _task_finished(session.connection(), job_id, row, values["now"])
    return True


@dataclass(frozen=True)
class AtomicRun:
    """What :func:`run_atomically` did: ``missing``, ``skipped`` (already finished) or ``finished``."""

    state: str
    outcome: JobOutcome
    error: dict[str, Any] | None = None
    request_id: str | None = None
    job_type: str | None = None
    parent_id: str | None = None  # a child's parent, which this run may have finished


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
        return AtomicRun("finished", outcome, error, claimed.request_id, claimed.type, claimed.parent_id)


_CLAIM_MANY = (
    update(JOBS)
    .where(JOBS.c.id.in_(bindparam("job_ids", expanding=True)), _UNFINISHED)
    .values(
        state=RUNNING,
        attempts=JOBS.c.attempts + 1,
        started_at=func.coalesce(JOBS.c.started_at, bindparam("now", type_=JOBS.c.started_at.type)),
        heartbeat_at=bindparam("now", type_=JOBS.c.heartbeat_at.type),  # the lease starts (leases.py)
    )
    .returning(JOBS.c.id, JOBS.c.args, JOBS.c.request_id, JOBS.c.type, JOBS.c.parent_id)
)
_PARENTS_OF = select(JOBS.c.parent_id).where(JOBS.c.id.in_(bindparam("job_ids", expanding=True))).distinct()


@dataclass(frozen=True)
class BatchRun:
    """What :func:`run_batch_atomically` did: one run per job it finished, and their parents."""

    runs: list[AtomicRun]
    parents: list[str]
    completed_parents: list[str]


def run_batch_atomically(
    db: Database, job_ids: list[str], work: AtomicWork, *, transient: tuple[type[BaseException], ...] = ()
) -> BatchRun:
    """Run several children of a parent (one message): claim them all in one statement, then each
    one's work and finish in its own transaction (per-order semantics are kept: one order, one
    transaction of its change and its job's outcome), then count them into their parents once.

    A domain error fails that child only. An error in ``transient`` propagates (the message is
    retried: finished children are skipped, the others claimed again); any other error fails that
    child as ``INTERNAL_ERROR`` and the batch goes on.
    """
    with db.autocommit() as conn:
        claimed = {row.id: row for row in conn.execute(_CLAIM_MANY, {"job_ids": job_ids, "now": utcnow()})}
        parents = sorted(row.parent_id for row in conn.execute(_PARENTS_OF, {"job_ids": job_ids}) if row.parent_id)
    runs: list[AtomicRun] = []
    for job_id in job_ids:
        row = claimed.get(job_id)
        if row is None:
            continue  # finished before (a redelivered message) or unknown
        error: dict[str, Any] | None = None
        try:
            with db.transaction() as session:
                try:
                    with session.begin_nested():
                        value = work(session, dict(row.args), row.request_id)
                    outcome = value if isinstance(value, JobOutcome) else JobOutcome(value)
                except DomainError as exc:
                    error, outcome = exc.as_dict(), JobOutcome()
                session.connection().execute(_FINISH, {"job_id": job_id, **_finish_values(outcome.result, error)})
        except transient:
            raise
        except Exception:
            log.exception("a child of a batch crashed", extra={"job_id": job_id})
            error = {"code": "INTERNAL_ERROR", "message": "The task failed unexpectedly.", "details": []}
            outcome = JobOutcome()
            with db.autocommit() as conn:
                conn.execute(_FINISH, {"job_id": job_id, **_finish_values(None, error)})
        runs.append(AtomicRun("finished", outcome, error, row.request_id, row.type, row.parent_id))
    completed = []
    for parent_id in parents:
        with db.transaction() as session:
            if recount_children(session, parent_id):
                completed.append(parent_id)
    return BatchRun(runs, parents, completed)
