"""Deleting what has expired: export files and their rows and jobs, idempotency records, and
finished jobs past their retention.

Each delete is bounded (``batch``) and keyed on an indexed expiry column, so the beat job is
cheap, safe beside live traffic, and idempotent (a second run finds nothing left to do). There are
no Celery results to expire: tasks run with ``ignore_result`` and the ``jobs`` table is the result
store, so finished jobs past their ``expires_at`` are what "results past their expiry" means here.

An expired export's file is deleted before its row, so a run interrupted in between leaves a row
whose file is gone (the next run deletes it), never a file nobody knows about. Objects in the
export store that no export row names (an attempt killed between its publish and its row) and
leftovers in this host's scratch folder (attempts killed mid-file) are deleted once they are
older than the export lifetime; a scratch file an attempt still holds locked is never touched.
With a shared store (S3) every host's housekeeping sweeps the store, and each host's own scratch
folder only by that host's maintenance worker, so scratch leftovers of a host without one stay
until it builds that export again (each attempt removes its dead predecessors' leftovers).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select

from models import Database, Export, IdempotencyRecord, Job
from models.types import utcnow
from services.exports.storage import ExportStorage, LocalStorage, held_by_a_live_attempt
from services.jobs.states import FINISHED

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Purged:
    idempotency_records: int
    jobs: int
    exports: int = 0
    files: int = 0


@dataclass(frozen=True)
class ExportStore:
    """Where export files live, where this host builds them, and how long an export lives."""

    storage: ExportStorage
    scratch: Path
    ttl: timedelta

    @property
    def scratch_is_store(self) -> bool:
        return isinstance(self.storage, LocalStorage) and self.storage.directory.resolve() == self.scratch.resolve()


def _purge_exports(db: Database, store: ExportStore, now: datetime, batch: int) -> tuple[int, int]:
    with db.reader() as session:
        expired = session.execute(
            select(Export.id, Export.job_id, Export.path).where(Export.expires_at < now).limit(batch)
        ).all()
    files = sum(1 for row in expired if store.storage.delete(row.path))
    if not expired:
        return 0, files
    with db.transaction() as session:
        rows = session.execute(delete(Export).where(Export.id.in_([row.id for row in expired]))).rowcount
        session.execute(delete(Job).where(Job.id.in_([row.job_id for row in expired])))
    return rows, files


def _old(names: Iterator[tuple[str, datetime]], cutoff: datetime, batch: int) -> list[str]:
    old = []
    for name, modified in names:
        if modified.astimezone(UTC) < cutoff:
            old.append(name)
            if len(old) >= batch:
                break
    return old


def _purge_orphans(db: Database, store: ExportStore, now: datetime, batch: int) -> int:
    """Objects no export row names and scratch leftovers, older than an export lives."""
    cutoff = now - store.ttl
    old = _old(((item.name, item.modified) for item in store.storage.listing()), cutoff, batch)
    removed = 0
    if old:
        with db.reader() as session:
            known = set(session.scalars(select(Export.path).where(Export.path.in_(old))))
        for name in old:
            if name in known:
                continue
            if store.scratch_is_store and name.endswith(".part") and held_by_a_live_attempt(store.scratch / name):
                continue
            removed += bool(store.storage.delete(name))
    if not store.scratch_is_store and store.scratch.is_dir():
        scratch = LocalStorage(store.scratch)
        for name in _old(((item.name, item.modified) for item in scratch.listing()), cutoff, batch):
            if not (name.endswith(".part") and held_by_a_live_attempt(store.scratch / name)):
                removed += bool(scratch.delete(name))
    return removed


def purge_expired(
    db: Database, *, exports: ExportStore | None = None, now: datetime | None = None, batch: int = 5000
) -> Purged:
    now = now or utcnow()
    export_rows = files = 0
    if exports is not None:
        export_rows, files = _purge_exports(db, exports, now, batch)
        files += _purge_orphans(db, exports, now, batch)
    with db.transaction() as session:
        expired_keys = select(IdempotencyRecord.id).where(IdempotencyRecord.expires_at < now).limit(batch)
        records = session.execute(
            delete(IdempotencyRecord).where(IdempotencyRecord.id.in_(expired_keys.scalar_subquery()))
        ).rowcount
        expired_jobs = select(Job.id).where(Job.expires_at < now, Job.state.in_(FINISHED)).limit(batch)
        jobs = session.execute(delete(Job).where(Job.id.in_(expired_jobs.scalar_subquery()))).rowcount
    return Purged(idempotency_records=records, jobs=jobs, exports=export_rows, files=files)
