"""Payment tasks (``payments`` queue): run an attempt, close checkouts, apply a stored webhook,
reconcile."""

from __future__ import annotations

from datetime import timedelta

import structlog
from celery import shared_task

from services.jobs.kinds import CLOSE_CHECKOUT, PAYMENT, WEBHOOK
from services.jobs.outbox import note_resent
from services.payments.checkout import close_checkouts
from services.payments.execution import execute_payment
from services.payments.reconciliation import reconcile_checkouts, stale_pending_payments
from services.payments.webhooks import apply_waiting_event, stale_waiting_events
from tasks.context import worker_context
from tasks.runner import run_job

log = structlog.get_logger(__name__)


@shared_task(name=PAYMENT.task_name, bind=True, max_retries=5)
def execute(self, job_id: str) -> None:  # noqa: ANN001 (Celery binds the task)
    run_job(self, job_id, lambda job, args: execute_payment(job.db, job.gateways, args, request_id=job.request_id))


@shared_task(name=CLOSE_CHECKOUT.task_name, bind=True, max_retries=8)
def close_checkout(self, job_id: str) -> None:  # noqa: ANN001 (Celery binds the task)
    """Expire an order's open hosted checkouts once it was paid another way or cancelled."""
    run_job(self, job_id, lambda job, args: close_checkouts(job.db, job.gateways, args, request_id=job.request_id))


@shared_task(name=WEBHOOK.task_name, bind=True, max_retries=8)
def apply_webhook_event(self, job_id: str) -> None:  # noqa: ANN001 (Celery binds the task)
    run_job(self, job_id, lambda job, args: apply_waiting_event(job.db, job.gateways, args, request_id=job.request_id))


@shared_task(name="maintenance.reconcile_payments")
def reconcile_payments() -> dict[str, object]:
    """Settle payments left ``pending`` past the grace period (``RECONCILE_AFTER_SECONDS``).

    Direct charges with an unknown outcome get another attempt (same idempotency key, so never a
    second charge) and webhook events still waiting are retried, both on the ``payments`` queue;
    hosted checkouts whose webhook never came are looked up at the gateway here and settled to
    what it says.
    """
    worker = worker_context()
    older_than = timedelta(seconds=worker.settings.reconcile_after_seconds)
    refs = stale_pending_payments(worker.db, older_than) + stale_waiting_events(worker.db, older_than)
    sent = worker.sender.send_all(refs)
    note_resent(worker.db, sent)
    run = reconcile_checkouts(worker.db, worker.gateways, older_than)
    note_resent(worker.db, worker.sender.send_all(run.jobs))
    checkouts = run.as_dict()
    if refs or any(checkouts.values()):
        log.info("reconciliation", found=len(refs), sent=len(sent), checkouts=checkouts)
    return {"requeued": len(sent), "checkouts": checkouts}
