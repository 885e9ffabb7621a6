"""Deleting what has expired: idempotency records and finished jobs past their retention.

Each delete is bounded (``batch``) and keyed on an indexed expiry column, so the beat job is
cheap, safe beside live traffic, and idempotent (a second run finds nothing left to do).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select

from models import Database, IdempotencyRecord, Job
from models.types import utcnow
from services.jobs import FINISHED


@dataclass(frozen=True)
class Purged:
    idempotency_records: int
    jobs: int


def purge_expired(db: Database, *, now: datetime | None = None, batch: int = 5000) -> Purged:
    now = now or utcnow()
    with db.transaction() as session:
        expired_keys = select(IdempotencyRecord.id).where(IdempotencyRecord.expires_at < now).limit(batch)
        records = session.execute(
            delete(IdempotencyRecord).where(IdempotencyRecord.id.in_(expired_keys.scalar_subquery()))
        ).rowcount
        expired_jobs = select(Job.id).where(Job.expires_at < now, Job.state.in_(FINISHED)).limit(batch)
        jobs = session.execute(delete(Job).where(Job.id.in_(expired_jobs.scalar_subquery()))).rowcount
    return Purged(idempotency_records=records, jobs=jobs)
