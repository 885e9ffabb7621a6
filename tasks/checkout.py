"""The checkout task queued with every new order (``payments`` queue)."""

from __future__ import annotations

from celery import shared_task

from services.checkout import open_checkout as open_checkout_service
from tasks.runner import run_job


@shared_task(name="orders.open_checkout", bind=True, max_retries=5)
def open_checkout(self, job_id: str) -> None:  # noqa: ANN001 (Celery binds the task)
    run_job(self, job_id, open_checkout_service)
