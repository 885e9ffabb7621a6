"""Every kind of job, in one table: the type clients see on a task, the Celery task that runs it,
and the queue it goes to.

A job row names its kind's task and queue (the relay re-sends it from the row), so adding a kind
is one line here, one task declared with ``name=<KIND>.task_name`` in ``tasks/``, and, for a new
queue, a line in ``workers/queues.py`` and the Procfile. ``tests/unit/test_job_kinds.py`` checks
that every kind's task is registered with the Celery app and its queue is served.
"""

from __future__ import annotations

from dataclasses import dataclass

# The queues, one per kind of work, so operators scale each worker pool on its own (the same names
# as ``workers/queues.py``, which may not import ``services``; the kinds test keeps them equal).
PAYMENTS_QUEUE, ORDERS_QUEUE, EXPORTS_QUEUE = "payments", "orders", "exports"


@dataclass(frozen=True)
class JobKind:
    type: str  # the task's ``type`` in ``GET /api/tasks/{id}``
    task_name: str
    queue: str


CHECKOUT = JobKind("checkout", "payments.open_checkout", PAYMENTS_QUEUE)
PAYMENT = JobKind("payment", "payments.execute", PAYMENTS_QUEUE)
CLOSE_CHECKOUT = JobKind("close_checkout", "payments.close_checkout", PAYMENTS_QUEUE)
WEBHOOK = JobKind("webhook", "payments.apply_webhook_event", PAYMENTS_QUEUE)
BULK_CANCEL = JobKind("bulk_cancel", "orders.bulk_cancel", ORDERS_QUEUE)
CANCEL_ORDER = JobKind("cancel_order", "orders.cancel_order", ORDERS_QUEUE)
EXPORT = JobKind("export", "exports.build_export", EXPORTS_QUEUE)

KINDS: tuple[JobKind, ...] = (CHECKOUT, PAYMENT, CLOSE_CHECKOUT, WEBHOOK, BULK_CANCEL, CANCEL_ORDER, EXPORT)

# Batch messages: the sender packs jobs of these kinds into messages of many (their ids are the
# message's argument), so a bulk cancel's 10,000 children are 200 messages, each claimed in one
# statement. Every job keeps its own kind's task, by which the relay re-sends one never finished.
CANCEL_ORDER_BATCH = JobKind(CANCEL_ORDER.type, "orders.cancel_orders", ORDERS_QUEUE)
BATCHES: dict[str, tuple[JobKind, int]] = {CANCEL_ORDER.task_name: (CANCEL_ORDER_BATCH, 50)}
BY_TYPE = {kind.type: kind for kind in KINDS}
