"""The checkout task queued with every new order (``payments`` queue): opens the hosted checkout."""

from __future__ import annotations

from celery import shared_task

from services.jobs.kinds import CHECKOUT
from services.payments.checkout import open_checkout as open_checkout_service
from tasks.runner import run_job


@shared_task(name=CHECKOUT.task_name, bind=True, max_retries=5)
def open_checkout(self, job_id: str) -> None:  # noqa: ANN001 (Celery binds the task)
    run_job(self, job_id, lambda job, args: open_checkout_service(job.db, job.gateways, args))


@shared_task(name="orders.open_checkout", bind=True, max_retries=5)
def open_checkout_by_former_name(self, job_id: str) -> None:  # noqa: ANN001 (Celery binds the task)
    """Checkout jobs written before the task took its ``payments.`` name still name this one."""
    run_job(self, job_id, lambda job, args: open_checkout_service(job.db, job.gateways, args))
