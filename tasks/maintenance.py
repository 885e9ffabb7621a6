"""Beat jobs on the ``maintenance`` queue."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import structlog
from celery import shared_task

from config.metrics import JOBS_RECOVERED, RELAY_RESENT
from services.exports.storage import storage_from_settings
from services.jobs.leases import recover_expired
from services.jobs.outbox import note_resent, stale_queued_jobs
from services.maintenance.housekeeping import ExportStore, purge_expired
from services.payments.expiry import expire_unpaid_orders as expire_unpaid_orders_service
from services.payments.settlement import previous_day, settle_day
from services.webhooks.retention import purge_old_events
from tasks.context import worker_context

log = structlog.get_logger(__name__)


@shared_task(name="maintenance.relay_queued_jobs")
def relay_queued_jobs() -> int:
    """Send again every job still ``queued`` after the grace period (tasks are idempotent)."""
    worker = worker_context()
    refs = stale_queued_jobs(worker.db, timedelta(seconds=worker.settings.relay_grace_seconds))
    sent = worker.sender.send_all(refs)
    note_resent(worker.db, sent)
    RELAY_RESENT.inc(len(sent))
    if refs:
        log.info("relayed queued jobs", found=len(refs), sent=len(sent))
    return len(sent)


@shared_task(name="maintenance.recover_stalled_jobs")
def recover_stalled_jobs() -> int:
    """Put ``running`` jobs whose worker stopped renewing their lease back in their queues and send
    them again (``services/jobs/leases.py``): a dead worker's job runs again within
    ``JOB_LEASE_SECONDS + RECOVERY_INTERVAL_SECONDS`` instead of the broker's visibility timeout."""
    worker = worker_context()
    refs = recover_expired(worker.db, timedelta(seconds=worker.settings.job_lease_seconds))
    sent = worker.sender.send_all(refs)
    note_resent(worker.db, sent)
    JOBS_RECOVERED.inc(len(refs))
    if refs:
        log.warning("recovered jobs of dead workers", found=len(refs), sent=len(sent), jobs=[r.job_id for r in refs])
    return len(refs)


@shared_task(name="maintenance.housekeeping")
def housekeeping() -> dict[str, int]:
    """Delete expired export files with their rows and jobs, expired idempotency records,
    finished jobs past retention, and events (with their deliveries) past theirs.

    There are no Celery results to clean: tasks run with ``ignore_result`` (no result backend) and
    the jobs table is the result store, whose finished rows expire here.
    """
    worker = worker_context()
    store = ExportStore(
        storage_from_settings(worker.settings),
        Path(worker.settings.export_dir),
        timedelta(seconds=worker.settings.export_ttl_seconds),
    )
    purged = purge_expired(worker.db, exports=store)
    old_events = purge_old_events(worker.db, older_than=timedelta(seconds=worker.settings.event_retention_seconds))
    summary = {
        "idempotencyRecords": purged.idempotency_records,
        "jobs": purged.jobs,
        "exports": purged.exports,
        "exportFiles": purged.files,
        "events": old_events.events,
        "webhookDeliveries": old_events.deliveries,
    }
    log.info("housekeeping", **summary)
    return summary


@shared_task(name="maintenance.expire_unpaid_orders")
def expire_unpaid_orders() -> dict[str, int]:
    """Cancel ``pending_payment`` orders past their payment window (``payment_timeout``)."""
    worker = worker_context()
    run = expire_unpaid_orders_service(worker.db, worker.gateways, batch=worker.settings.expire_orders_batch)
    note_resent(worker.db, worker.sender.send_all(run.jobs))
    if run.cancelled or run.paid or run.deferred:
        log.info("unpaid orders", **run.as_dict())
    return run.as_dict()


@shared_task(name="maintenance.settle_payments")
def settle_payments(day: str | None = None) -> dict[str, object]:
    """Store each gateway's settlement report for ``day`` (YYYY-MM-DD; default: the previous UTC day)."""
    worker = worker_context()
    settled = settle_day(worker.db, worker.gateways, date.fromisoformat(day) if day else previous_day())
    summary = settled.as_dict()
    log.info("settlement", **summary)
    return summary
