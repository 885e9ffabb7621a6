"""Export use cases: queue an export, build its file (in a worker), open it for download.

Building streams: one consistent read snapshot (:meth:`models.Database.snapshot`) counts the rows
and then reads them with ``stream_results``/``yield_per`` (a server-side cursor on PostgreSQL; the
SQLite cursor steps lazily), and each row is written as it arrives. The file is written in the
scratch folder (``EXPORT_DIR``) under a name unique to this attempt
(``{exportId}.{attempt}-{random}.part``), fsynced, and published to the store
(:mod:`services.exports.storage`: the same folder, or S3) as ``{exportId}.{ext}`` only when
complete; the ``exports`` row is written after the publish, so a download never sees a
half-written file.

Two attempts of one export may run at once (a worker stalled past its lease beside the attempt
that replaced it). Each holds an exclusive ``flock`` on its own ``.part`` file while it runs, and
an attempt removes only the leftovers whose lock nobody holds (their process is dead). The first
attempt to publish wins (the store refuses a second object of the same name); the other discards
its file and reports what the winner published, and the first ``exports`` row written stays. So a
download, the row and every attempt's job result name the same bytes.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import Database, Export, Job, Order
from models.ids import new_id
from models.types import utcnow
from services.events.record import EXPORT_READY, add_event
from services.exports import signing
from services.exports.columns import resolve_columns
from services.exports.filters import ExportFilters, order_by_clauses, validate, where_clause
from services.exports.storage import (
    ExportStorage,
    LocalStorage,
    ObjectMissing,
    StoreUnavailable,
    file_sha256,
    held_by_a_live_attempt,
    storage_from_settings,
)
from services.exports.writers import XLSX_MAX_ROWS, content_type_for, open_writer
from services.jobs.kinds import EXPORT
from services.jobs.outbox import JobRef, add_job
from services.jobs.progress import ProgressReporter, set_expiry
from services.kernel.errors import ExportExpired, ResourceNotFound, ServiceUnavailable, ValidationFailed
from services.kernel.principal import Principal

EXPORT_ROLES = ("admin", "ops")
FORMATS = {"csv": "csv", "xlsx": "xlsx", "excel": "xlsx"}
EXTENSIONS = {"csv": "csv", "xlsx": "xlsx"}
PROGRESS_CHECK_EVERY = 256  # rows between two looks at the clock


@dataclass(frozen=True)
class ExportPolicy:
    """Deployment settings the export use cases need."""

    export_dir: Path  # scratch space of this host (and the store itself when no other is set)
    ttl: timedelta
    secret_key: str
    sheet_rows: int = XLSX_MAX_ROWS
    progress_rows: int = 5000
    progress_seconds: float = 0.5
    fetch_rows: int = 2000
    storage: ExportStorage | None = field(default=None, compare=False)

    @property
    def store(self) -> ExportStorage:
        """Where finished files are published and served from (default: ``export_dir`` itself)."""
        return self.storage if self.storage is not None else LocalStorage(self.export_dir)

    @classmethod
    def from_settings(cls, settings: Any) -> ExportPolicy:
        return cls(
            storage=storage_from_settings(settings),
            export_dir=Path(settings.export_dir),
            ttl=timedelta(seconds=settings.export_ttl_seconds),
            secret_key=settings.secret_key,
            sheet_rows=settings.export_xlsx_sheet_rows,
            progress_rows=settings.export_progress_rows,
            progress_seconds=settings.export_progress_seconds,
            fetch_rows=settings.export_fetch_rows,
        )


@dataclass(frozen=True)
class ExportRequest:
    format: str
    columns: list[str] | None
    filters: ExportFilters


@dataclass(frozen=True)
class QueuedExport:
    export_id: str
    job: JobRef


@dataclass(frozen=True)
class ExportFile:
    export_id: str
    name: str  # the object's name in the store
    filename: str
    content_type: str
    size: int
    sha256: str
    storage: ExportStorage = field(compare=False)

    def open(self, first: int = 0, last: int | None = None) -> BinaryIO:
        """The file's bytes ``first..last`` (inclusive), streamed from the store; 404 if it is gone."""
        try:
            return self.storage.open(self.name, first, last)
        except ObjectMissing:
            raise _gone(self.export_id) from None
        except StoreUnavailable as exc:
            raise ServiceUnavailable("The export store is unreachable; retry later.") from exc

    def exists(self) -> bool:
        try:
            return self.storage.exists(self.name)
        except StoreUnavailable as exc:
            raise ServiceUnavailable("The export store is unreachable; retry later.") from exc


def _gone(export_id: str) -> ResourceNotFound:
    return ResourceNotFound("The export's file is no longer available.", details=[{"exportId": export_id}])


def iso_z(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def request_export(
    db: Database,
    principal: Principal,
    request: ExportRequest,
    policy: ExportPolicy,
    *,
    file_url: Callable[[str], str],
    request_id: str | None = None,
) -> QueuedExport:
    """Check the request now (columns, filters, role) and queue the build; the caller sends the
    message after this commits. Customers may not export (403): exports span customers.

    ``file_url(export_id)``: the export's download URL (the API's route), signed by the worker."""
    principal.require_role(*EXPORT_ROLES)
    fmt = FORMATS.get(request.format)
    if fmt is None:
        raise ValidationFailed(details=[{"field": "format", "message": f"one of {sorted(FORMATS)}"}])
    columns = resolve_columns(request.columns)
    validate(request.filters)
    export_id = new_id("exp")
    with db.transaction() as session:
        job = add_job(
            session,
            EXPORT,
            args={
                "exportId": export_id,
                "format": fmt,
                "columns": [column.name for column in columns],
                "filters": request.filters.as_args(),
                "fileUrl": file_url(export_id),
            },
            owner=principal,
            request_id=request_id,
            expires_at=utcnow() + policy.ttl,
        )
    return QueuedExport(export_id=export_id, job=job)


def _remove_leftovers(export_dir: Path, export_id: str) -> int:
    """Delete what earlier attempts of this export left behind when they died (SIGKILL, lost
    host); the files of an attempt still running (its ``.part`` locked) are left alone."""
    removed = 0
    for leftover in export_dir.glob(f"{export_id}.*.part"):
        if not held_by_a_live_attempt(leftover):
            leftover.unlink(missing_ok=True)
            removed += 1
    for scratch in export_dir.glob(f".{export_id}.*.tmp"):
        token = scratch.name[len(export_id) + 2 : -len(".tmp")]
        if not held_by_a_live_attempt(export_dir / f"{export_id}.{token}.part"):
            shutil.rmtree(scratch, ignore_errors=True)
            removed += 1
    return removed


def _lock_attempt(part: Path) -> int:
    """Create this attempt's ``.part`` and hold an exclusive lock on it while the attempt runs.

    Another attempt's sweep may see the file between its creation and the lock and remove it as
    a dead attempt's; the lock is then on a file no longer at that name, so it is made again."""
    while True:
        fd = os.open(part, os.O_WRONLY | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(part).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class _Published:
    rows: int
    size: int
    sha256: str
    expires_at: datetime


def _ready_event(session: Session, record: Export) -> None:
    """``export.ready`` in the transaction that publishes the export's row (its owner's event)."""
    owner = session.scalar(select(Job.owner_customer_id).where(Job.id == record.job_id))
    data = {
        "exportId": record.id,
        "taskId": record.job_id,
        "format": record.format,
        "rows": record.rows,
        "bytes": record.bytes,
        "sha256": record.sha256,
        "expiresAt": record.expires_at,
    }
    add_event(session.connection(), EXPORT_READY, order_id=None, customer_id=owner, data=data)


def _record(db: Database, export_id: str, job_id: str, fmt: str, name: str, built: _Published) -> _Published:
    """Write the export's row unless an attempt wrote it first; returns what the row says."""
    for _ in range(2):
        try:
            with db.transaction() as session:
                record = session.get(Export, export_id)
                if record is None:
                    now = utcnow()
                    record = Export(
                        id=export_id,
                        job_id=job_id,
                        format=fmt,
                        path=name,
                        rows=built.rows,
                        bytes=built.size,
                        sha256=built.sha256,
                        created_at=now,
                        expires_at=built.expires_at,
                    )
                    session.add(record)
                    _ready_event(session, record)
                return _Published(record.rows, record.bytes, record.sha256, record.expires_at)
        except IntegrityError:
            continue  # a concurrent attempt inserted it between our read and our insert: read it
    raise RuntimeError(f"export {export_id}: its row could be neither written nor read")


def build_export(
    db: Database,
    args: dict[str, Any],
    policy: ExportPolicy,
    *,
    job_id: str,
    attempt: int = 1,
    report_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Write the export's file and record it; returns the job's result."""
    export_id, fmt = args["exportId"], args["format"]
    columns = resolve_columns(args["columns"])
    filters = ExportFilters.from_args(args["filters"])
    where, order = where_clause(filters), order_by_clauses(filters.orderby)

    export_dir = policy.export_dir
    export_dir.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(export_dir, export_id)
    token = f"{attempt}-{secrets.token_hex(4)}"
    part = export_dir / f"{export_id}.{token}.part"
    scratch = export_dir / f".{export_id}.{token}.tmp"
    final_name = f"{export_id}.{EXTENSIONS[fmt]}"
    reporter = ProgressReporter(
        report_progress or (lambda current, total: None),
        every_rows=policy.progress_rows,
        every_seconds=policy.progress_seconds,
    )
    lock = _lock_attempt(part)
    try:
        if fmt == "xlsx":
            scratch.mkdir()
        with db.snapshot() as conn:
            total = conn.scalar(select(func.count()).select_from(Order).where(where)) or 0
            reporter.update(0, total, force=True)
            writer = open_writer(fmt, part, columns, sheet_rows=policy.sheet_rows, tmpdir=scratch)
            try:
                rows = conn.execute(
                    select(*(column.column for column in columns)).where(where).order_by(*order),
                    execution_options={"stream_results": True, "yield_per": policy.fetch_rows},
                )
                check_every = max(1, min(PROGRESS_CHECK_EVERY, policy.progress_rows))
                next_check = check_every
                for row in rows:
                    writer.write(row)
                    if writer.rows >= next_check:
                        next_check += check_every
                        reporter.update(writer.rows, total)
            finally:
                writer.close()
        _fsync(part)
        built = _Published(writer.rows, part.stat().st_size, file_sha256(part), utcnow() + policy.ttl)
        store = policy.store
        if not store.publish(part, final_name, sha256=built.sha256, content_type=content_type_for(fmt)):
            # Another attempt published first: its object is the export (and it may have died
            # before writing the row, so the row is written from the object itself).
            winner = store.describe(final_name)
            if winner is None or winner.sha256 is None:
                raise RuntimeError(f"export {export_id}: the store refused the file but does not describe it")
            built = _Published(_winners_rows(db, export_id, built.rows), winner.size, winner.sha256, built.expires_at)
        recorded = _record(db, export_id, job_id, fmt, final_name, built)
        reporter.update(recorded.rows, max(total, recorded.rows), force=True)
        set_expiry(db, job_id, recorded.expires_at)
    finally:
        os.close(lock)
        part.unlink(missing_ok=True)
        shutil.rmtree(scratch, ignore_errors=True)

    written, size, sha256, expires_at = recorded.rows, recorded.size, recorded.sha256, recorded.expires_at
    return {
        "exportId": export_id,
        "rows": written,
        "bytes": size,
        "sha256": sha256,
        "downloadUrl": signing.signed_link(args["fileUrl"], policy.secret_key, export_id, expires_at),
        "expiresAt": iso_z(expires_at),
    }


WINNER_ROW_WAIT_SECONDS = 10.0


def _winners_rows(db: Database, export_id: str, ours: int) -> int:
    """The row count the winning attempt records: it writes its row right after its publish, so
    wait for it a little; if it died in between, our count of the same export stands in."""
    deadline = time.monotonic() + WINNER_ROW_WAIT_SECONDS
    while True:
        with db.reader() as session:
            record = session.get(Export, export_id)
        if record is not None:
            return record.rows
        if time.monotonic() >= deadline:
            return ours
        time.sleep(0.1)


def open_export(
    db: Database,
    export_id: str,
    *,
    expires: str | None,
    signature: str | None,
    policy: ExportPolicy,
    now: datetime | None = None,
) -> ExportFile:
    """The file a signed link names: 403 if tampered, 410 if expired, 404 if it is gone.

    The size is the one recorded with the row (the object never changes once published), so a
    remote store is asked nothing until the bytes are read."""
    now = now or utcnow()
    signing.verify(policy.secret_key, export_id, expires, signature, now)
    with db.reader() as session:
        record = session.get(Export, export_id)
    if record is None:
        raise ResourceNotFound("Export does not exist.", details=[{"exportId": export_id}])
    if record.expires_at <= now:
        raise ExportExpired(details=[{"exportId": export_id, "expiredAt": iso_z(record.expires_at)}])
    store = policy.store
    if isinstance(store, LocalStorage) and not store.exists(record.path):
        raise _gone(export_id)  # a local file is checked at once (a remote one when it is read)
    return ExportFile(
        export_id=export_id,
        name=record.path,
        filename=f"orders-{export_id}.{EXTENSIONS[record.format]}",
        content_type=content_type_for(record.format),
        size=record.bytes,
        sha256=record.sha256,
        storage=store,
    )
