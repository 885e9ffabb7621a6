"""Lifecycle tasks on the ``orders`` queue: a bulk cancel's fan-out and its per-order children."""

from __future__ import annotations

from celery import shared_task

from services.changes.bulk_cancel import cancel_in, fan_out
from services.jobs.kinds import BULK_CANCEL, CANCEL_ORDER, CANCEL_ORDER_BATCH
from tasks.runner import run_batch, run_job, run_job_atomically


@shared_task(name=BULK_CANCEL.task_name, bind=True, max_retries=5)
def bulk_cancel(self, job_id: str) -> None:  # noqa: ANN001 (Celery binds the task)
    run_job(self, job_id, lambda job, args: fan_out(job.db, job.job_id, args))


@shared_task(name=CANCEL_ORDER.task_name, bind=True, max_retries=5)
def cancel_order(self, job_id: str) -> None:  # noqa: ANN001 (Celery binds the task)
    run_job_atomically(self, job_id, cancel_in)


@shared_task(name=CANCEL_ORDER_BATCH.task_name, bind=True, max_retries=5)
def cancel_orders(self, job_ids: list[str]) -> None:  # noqa: ANN001 (Celery binds the task)
    """A batch of a bulk cancel's children: one order, one transaction, each."""
    run_batch(self, job_ids, cancel_in)
