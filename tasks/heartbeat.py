"""The heartbeat of a worker process: renews the leases of the jobs it runs for longer than a beat.

Each worker process (a prefork child, or the worker itself with the solo/threads pools) keeps the
ids of the tasks it is running, from Celery's ``task_prerun``/``task_postrun`` signals (a task's id
is its job's id), and a daemon thread that, every ``lease / 6`` seconds, renews in one UPDATE the
jobs that have run at least ``lease / 3`` seconds since their claim or last renewal. So:

- a job shorter than ``lease / 3`` (10 s by default) costs no statement beyond its claim and finish;
- a live job's heartbeat is never older than about ``lease / 2``, well inside the lease;
- when the process dies (SIGKILL, OOM, host lost), the heartbeats stop with it and the lease sweep
  (``services/jobs/leases.py``) puts its jobs back in their queues once the lease has run out.

Nothing runs at import time: the thread starts with the first task of each process (after the fork).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from celery.signals import task_postrun, task_prerun

from services.jobs import leases
from tasks.context import worker_context

log = structlog.get_logger(__name__)


class Heartbeat:
    """The running jobs of one process and the thread that renews their leases."""

    def __init__(
        self,
        renew: Callable[[Sequence[str]], Any],
        *,
        lease_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._renew = renew
        self.every = max(0.05, lease_seconds / 3)
        self._clock = clock
        self._since: dict[str, float] = {}  # job id -> when it was claimed or last renewed
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def started(self, job_id: str) -> None:
        with self._lock:
            self._since[job_id] = self._clock()
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="job-heartbeat", daemon=True)
            self._thread.start()

    def finished(self, job_id: str) -> None:
        with self._lock:
            self._since.pop(job_id, None)

    def due(self) -> list[str]:
        """The jobs that have gone a whole beat without a renewal."""
        now = self._clock()
        with self._lock:
            return [job_id for job_id, since in self._since.items() if now - since >= self.every]

    def beat(self) -> list[str]:
        """Renew what is due (one statement); returns the ids renewed."""
        due = self.due()
        if not due:
            return []
        try:
            self._renew(due)
        except Exception as exc:  # a database blip: try again next beat, the lease has room for it
            log.warning("job leases not renewed", jobs=len(due), error=repr(exc))
            return []
        now = self._clock()
        with self._lock:
            for job_id in due:
                if job_id in self._since:
                    self._since[job_id] = now
        return due

    def _loop(self) -> None:
        while True:
            time.sleep(self.every / 2)
            self.beat()


_process: tuple[int, Heartbeat] | None = None


def heartbeat() -> Heartbeat:
    """This process's heartbeat (a new one after a fork: threads do not survive one)."""
    global _process
    if _process is None or _process[0] != os.getpid():
        worker = worker_context()
        beat = Heartbeat(lambda ids: leases.renew(worker.db, ids), lease_seconds=worker.settings.job_lease_seconds)
        _process = (os.getpid(), beat)
    return _process[1]


@task_prerun.connect
def _job_started(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        heartbeat().started(task_id)


@task_postrun.connect
def _job_finished(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        heartbeat().finished(task_id)
