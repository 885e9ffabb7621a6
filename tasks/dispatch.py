"""Publishing job messages after commit.

A failed publish (broker down) is logged, not raised: the job row is already committed and
stays ``queued``, and the relay beat job sends it again once the broker is back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from celery import Celery

from config.settings import Settings
from models.ids import new_id
from services.jobs.kinds import BATCHES, JobKind
from services.jobs.outbox import JobRef
from workers.app import create_celery_app
from workers.queues import ALL_QUEUES as QUEUES

log = logging.getLogger(__name__)

__all__ = ["QUEUES", "TaskSender", "make_sender"]


class TaskSender:
    """Publishes job messages; ``queue_prefix`` turns a job's queue into its name on the broker."""

    def __init__(self, app: Celery, queue_prefix: str = "") -> None:
        self.app = app
        self.queue_prefix = queue_prefix

    def _publish(self, ref: JobRef, request_id: str | None, producer: Any = None) -> None:
        self.app.send_task(
            ref.task_name,
            args=[ref.job_id],
            task_id=ref.job_id,
            queue=self.queue_prefix + ref.queue,
            # sent_at: the worker observes how long the message waited (orders_queue_wait_seconds).
            headers={"request_id": request_id, "sent_at": time.time()},
            retry=False,
            producer=producer,
        )

    def send(self, ref: JobRef, *, request_id: str | None = None) -> bool:
        """Publish one job's message; True when the broker took it."""
        try:
            self._publish(ref, request_id)
            return True
        except Exception as exc:  # kombu/redis raise several types; all mean "not sent now"
            log.warning(
                "job message not sent; the relay will resend it", extra={"job_id": ref.job_id, "error": repr(exc)}
            )
            return False

    def _publish_batch(self, batch: JobKind, job_ids: list[str], request_id: str | None, producer: Any) -> None:
        self.app.send_task(
            batch.task_name,
            args=[job_ids],
            task_id=new_id("batch"),
            queue=batch.queue,
            headers={"request_id": request_id},
            retry=False,
            producer=producer,
        )

    def send_all(self, refs: Iterable[JobRef], *, request_id: str | None = None) -> list[str]:
        """Publish several over one producer connection; returns the ids of the jobs sent.

        Jobs of a kind with a batch task (``services.jobs.kinds.BATCHES``) go in messages of many.
        The first failure stops the sending (the broker is down); the rest stay ``queued``.
        """
        sent: list[str] = []
        batched: dict[str, list[str]] = {}
        try:
            with self.app.producer_or_acquire() as producer:
                for ref in refs:
                    if ref.task_name in BATCHES:
                        batched.setdefault(ref.task_name, []).append(ref.job_id)
                        continue
                    self._publish(ref, request_id, producer)
                    sent.append(ref.job_id)
                for task_name, job_ids in batched.items():
                    batch, size = BATCHES[task_name]
                    for start in range(0, len(job_ids), size):
                        chunk = job_ids[start : start + size]
                        self._publish_batch(batch, chunk, request_id, producer)
                        sent.extend(chunk)
        except Exception as exc:  # as in send(): any broker error means "not sent now"
            log.warning("job messages not sent; the relay will resend them", extra={"error": repr(exc)})
        return sent


def make_sender(settings: Settings) -> TaskSender:
    """A sender on a Celery app built from ``settings`` (no connection until the first send)."""
    return TaskSender(create_celery_app(settings), settings.queue_prefix)
