"""The checkout task queued with every new order (``payments`` queue): opens the hosted checkout."""

from __future__ import annotations

from celery import shared_task

from services.payments.checkout import open_checkout as open_checkout_service
from tasks.context import checkout_links, gateways
from tasks.runner import run_job


@shared_task(name="orders.open_checkout", bind=True, max_retries=5)
def open_checkout(self, job_id: str) -> None:  # noqa: ANN001 (Celery binds the task)
    run_job(self, job_id, lambda db, args: open_checkout_service(db, gateways(), checkout_links(), args))
