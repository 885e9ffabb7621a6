"""Progress of a running job, written at a throttled pace."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import update

from models import Database, Job


def set_progress(db: Database, job_id: str, current: int, total: int) -> None:
    with db.transaction() as session:
        session.execute(update(Job).where(Job.id == job_id).values(progress_current=current, progress_total=total))


class ProgressReporter:
    """Throttles progress writes: one write per ``every_rows`` rows or ``every_seconds``, whichever
    comes first (and always the first and the last), never one per row."""

    def __init__(
        self,
        sink: Callable[[int, int], None],
        *,
        every_rows: int = 5000,
        every_seconds: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sink = sink
        self._every_rows = max(1, every_rows)
        self._every_seconds = every_seconds
        self._clock = clock
        self._last_rows: int | None = None
        self._last_time = 0.0
        self.writes = 0

    def update(self, current: int, total: int, *, force: bool = False) -> bool:
        """Report ``current`` of ``total`` if it is time to; True when a write was made."""
        now = self._clock()
        if not force and self._last_rows is not None:
            if current - self._last_rows < self._every_rows and now - self._last_time < self._every_seconds:
                return False
            if current == self._last_rows:
                return False
        self._sink(current, total)
        self._last_rows, self._last_time = current, now
        self.writes += 1
        return True


def set_expiry(db: Database, job_id: str, expires_at: datetime) -> None:
    with db.transaction() as session:
        session.execute(update(Job).where(Job.id == job_id).values(expires_at=expires_at))
