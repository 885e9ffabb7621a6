"""Export use cases: queue an export, build its file (in a worker), open it for download.

Building streams: one consistent read snapshot (:meth:`models.Database.snapshot`) counts the rows
and then reads them with ``stream_results``/``yield_per`` (a server-side cursor on PostgreSQL; the
SQLite cursor steps lazily), and each row is written as it arrives. The file is written under a
name unique to this attempt (``{exportId}.{attempt}-{random}.part``), fsynced, and renamed to
``{exportId}.{ext}`` only when complete; the ``exports`` row is written after the rename, so a
download never sees a half-written file. A redelivered task (its worker was killed) first
removes every leftover ``.part`` file and scratch directory of the same export, then starts over.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from models import Database, Export, Order
from models.ids import new_id
from models.types import utcnow
from services.exports import signing
from services.exports.columns import resolve_columns
from services.exports.filters import ExportFilters, order_by_clauses, validate, where_clause
from services.exports.writers import XLSX_MAX_ROWS, content_type_for, open_writer
from services.jobs.kinds import EXPORT
from services.jobs.outbox import JobRef, add_job
from services.jobs.progress import ProgressReporter, set_expiry
from services.kernel.errors import ExportExpired, ResourceNotFound, ValidationFailed
from services.kernel.principal import Principal

EXPORT_ROLES = ("admin", "ops")
FORMATS = {"csv": "csv", "xlsx": "xlsx", "excel": "xlsx"}
EXTENSIONS = {"csv": "csv", "xlsx": "xlsx"}
PROGRESS_CHECK_EVERY = 256  # rows between two looks at the clock


@dataclass(frozen=True)
class ExportPolicy:
    """Deployment settings the export use cases need."""

    export_dir: Path
    ttl: timedelta
    secret_key: str
    sheet_rows: int = XLSX_MAX_ROWS
    progress_rows: int = 5000
    progress_seconds: float = 0.5
    fetch_rows: int = 2000

    @classmethod
    def from_settings(cls, settings: Any) -> ExportPolicy:
        return cls(
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
    path: Path
    filename: str
    content_type: str
    size: int
    sha256: str


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
    """Delete what an earlier, interrupted attempt of this export left behind."""
    removed = 0
    for leftover in export_dir.glob(f"{export_id}.*.part"):
        leftover.unlink(missing_ok=True)
        removed += 1
    for scratch in export_dir.glob(f".{export_id}.*.tmp"):
        shutil.rmtree(scratch, ignore_errors=True)
        removed += 1
    return removed


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
        written = writer.rows
        _fsync(part)
        size, sha256 = part.stat().st_size, _digest(part)
        os.replace(part, export_dir / final_name)
        reporter.update(written, max(total, written), force=True)

        now = utcnow()
        expires_at = now + policy.ttl
        with db.transaction() as session:
            record = session.get(Export, export_id) or Export(id=export_id, job_id=job_id)
            record.format, record.path, record.rows = fmt, final_name, written
            record.bytes, record.sha256, record.created_at, record.expires_at = size, sha256, now, expires_at
            session.add(record)
        set_expiry(db, job_id, expires_at)
    finally:
        part.unlink(missing_ok=True)
        shutil.rmtree(scratch, ignore_errors=True)

    return {
        "exportId": export_id,
        "rows": written,
        "bytes": size,
        "sha256": sha256,
        "downloadUrl": signing.signed_link(args["fileUrl"], policy.secret_key, export_id, expires_at),
        "expiresAt": iso_z(expires_at),
    }


def open_export(
    db: Database,
    export_id: str,
    *,
    expires: str | None,
    signature: str | None,
    policy: ExportPolicy,
    now: datetime | None = None,
) -> ExportFile:
    """The file a signed link names: 403 if tampered, 410 if expired, 404 if it is gone."""
    now = now or utcnow()
    signing.verify(policy.secret_key, export_id, expires, signature, now)
    with db.reader() as session:
        record = session.get(Export, export_id)
    if record is None:
        raise ResourceNotFound("Export does not exist.", details=[{"exportId": export_id}])
    if record.expires_at <= now:
        raise ExportExpired(details=[{"exportId": export_id, "expiredAt": iso_z(record.expires_at)}])
    export_dir = policy.export_dir.resolve()
    path = (export_dir / record.path).resolve()
    if path.parent != export_dir or not path.is_file():
        raise ResourceNotFound("The export's file is no longer available.", details=[{"exportId": export_id}])
    return ExportFile(
        export_id=export_id,
        path=path,
        filename=f"orders-{export_id}.{EXTENSIONS[record.format]}",
        content_type=content_type_for(record.format),
        size=path.stat().st_size,
        sha256=record.sha256,
    )
