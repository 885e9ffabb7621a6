"""Progress notices: a worker announces every progress write of a job on a Redis channel, so a
task's event stream (``GET /api/tasks/{id}/events``) sends the new progress at once.

Like a completion notice (``tasks.notices``) it only says "look again": the stream reads the job
row, so a lost notice costs the stream's slow safety read and a stray one a read. Publishing is
best effort and never slows the job down for long: after a failure, this process does not try
again for :data:`RETRY_SECONDS`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis

from services.jobs.progress import set_progress

if TYPE_CHECKING:
    from tasks.context import WorkerContext

log = logging.getLogger(__name__)

CHANNEL = "orders:jobs:progress"
RETRY_SECONDS = 5.0

_skip_until = 0.0


def announce_progress(client: redis.Redis, job_id: str) -> None:
    """Publish that ``job_id``'s progress changed (best effort)."""
    global _skip_until
    if time.monotonic() < _skip_until:
        return
    try:
        client.publish(CHANNEL, job_id)
    except redis.RedisError as exc:
        _skip_until = time.monotonic() + RETRY_SECONDS
        log.info("progress notices not published for %ss: %r", RETRY_SECONDS, exc)


def progress_reporter(worker: WorkerContext, job_id: str) -> Callable[[int, int], None]:
    """``JobContext.report_progress``: write the progress, then announce it."""

    def report(current: int, total: int) -> None:
        set_progress(worker.db, job_id, current, total)
        announce_progress(worker.redis, job_id)

    return report
