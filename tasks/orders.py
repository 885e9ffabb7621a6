"""Lifecycle tasks on the ``orders`` queue: a bulk cancel's fan-out and its per-order children."""

from __future__ import annotations

from celery import shared_task

from services.changes.bulk_cancel import cancel_in, fan_out
from tasks.runner import run_job, run_job_atomically


@shared_task(name="orders.bulk_cancel", bind=True, max_retries=5)
def bulk_cancel(self, job_id: str) -> None:  # noqa: ANN001 (Celery binds the task)
    run_job(self, job_id, lambda db, args: fan_out(db, job_id, args))


@shared_task(name="orders.cancel_order", bind=True, max_retries=5)
def cancel_order(self, job_id: str) -> None:  # noqa: ANN001 (Celery binds the task)
    run_job_atomically(self, job_id, cancel_in)
