"""Deleting what has expired: export files and their rows and jobs, idempotency records, and
finished jobs past their retention.

Each delete is bounded (``batch``) and keyed on an indexed expiry column, so the beat job is
cheap, safe beside live traffic, and idempotent (a second run finds nothing left to do). There are
no Celery results to expire: tasks run with ``ignore_result`` and the ``jobs`` table is the result
store, so finished jobs past their ``expires_at`` are what "results past their expiry" means here.

An expired export's file is deleted before its row, so a run interrupted in between leaves a row
whose file is gone (the next run deletes it), never a file nobody knows about. Files under the
export directory that no export row names (an attempt killed before it recorded its file) are
deleted once they are older than the export lifetime.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select

from models import Database, Export, IdempotencyRecord, Job
from models.types import utcnow
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
    """Where export files live and how long an export lives."""

    directory: Path
    ttl: timedelta


def _inside(directory: Path, name: str) -> Path | None:
    path = (directory / name).resolve()
    return path if path.parent == directory else None


def _remove(path: Path) -> bool:
    try:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
        return True
    except FileNotFoundError:
        return False


def _purge_exports(db: Database, store: ExportStore, now: datetime, batch: int) -> tuple[int, int]:
    directory = store.directory.resolve()
    with db.reader() as session:
        expired = session.execute(
            select(Export.id, Export.job_id, Export.path).where(Export.expires_at < now).limit(batch)
        ).all()
    files = 0
    for row in expired:
        path = _inside(directory, row.path)
        if path is not None and _remove(path):
            files += 1
    if not expired:
        return 0, files
    with db.transaction() as session:
        rows = session.execute(delete(Export).where(Export.id.in_([row.id for row in expired]))).rowcount
        session.execute(delete(Job).where(Job.id.in_([row.job_id for row in expired])))
    return rows, files


def _purge_orphans(db: Database, store: ExportStore, now: datetime, batch: int) -> int:
    """Files no export row names, older than an export lives (leftovers of killed attempts)."""
    directory = store.directory
    if not directory.is_dir():
        return 0
    cutoff = (now - store.ttl).timestamp()
    old = []
    for path in directory.iterdir():
        try:
            if path.stat().st_mtime < cutoff:
                old.append(path)
        except FileNotFoundError:
            continue
        if len(old) >= batch:
            break
    if not old:
        return 0
    with db.reader() as session:
        known = set(session.scalars(select(Export.path).where(Export.path.in_([path.name for path in old]))))
    return sum(_remove(path) for path in old if path.name not in known)


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
