"""The front's await point for ``Prefer: wait``: requests wait for their job on the event loop.

A job's completion notice (a Redis pub/sub message its worker publishes after the finish commits,
``tasks.notices``) wakes its waiting requests through :meth:`JobWaits.notify`. One poller per
process also asks the database, in one query per tick, which of the waited-for jobs have finished
(``services.jobs.views.finished_among``): the safety net for a notice that was lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor

from models import Database
from services.jobs.views import finished_among

log = logging.getLogger(__name__)

# The safety net: completion notices (tasks.notices) wake a waiting request at once; this poll
# catches a job whose notice was lost (Redis away, a worker killed between commit and publish).
POLL_INTERVAL_SECONDS = 0.5


class JobWaits:
    def __init__(self, executor: Executor, *, interval: float = POLL_INTERVAL_SECONDS) -> None:
        self.executor = executor
        self.interval = interval
        self._waiters: dict[tuple[int, str], list[asyncio.Future[None]]] = {}
        self._dbs: dict[int, Database] = {}
        self._poller: asyncio.Task[None] | None = None
        self._released = False

    @property
    def waiting(self) -> int:
        return sum(len(futures) for futures in self._waiters.values())

    async def wait(self, db: Database, job_id: str, timeout: float) -> None:
        """Return when ``job_id`` finished, ``timeout`` seconds passed, or :meth:`release_all` ran."""
        if timeout <= 0 or self._released:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        key = (id(db), job_id)
        self._dbs[id(db)] = db
        self._waiters.setdefault(key, []).append(future)
        if self._poller is None or self._poller.done():
            self._poller = loop.create_task(self._poll())
        else:
            # It may have finished between the request's look and this registration (its notice
            # then came too early to wake us): look once now rather than at the next tick.
            loop.create_task(self._check(db, key))
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            pass
        finally:
            futures = self._waiters.get(key, [])
            if future in futures:
                futures.remove(future)
            if not futures:
                self._waiters.pop(key, None)

    def notify(self, job_id: str) -> None:
        """Wake every request waiting for ``job_id`` (it looks at the job again, so a false alarm is harmless)."""
        for (_, waited), futures in list(self._waiters.items()):
            if waited == job_id:
                self._wake(futures)

    def release_all(self) -> None:
        """Stop waiting (the worker is shutting down): every waiting request answers now, and new ones at once."""
        self._released = True
        for futures in list(self._waiters.values()):
            self._wake(futures)

    @staticmethod
    def _wake(futures: list[asyncio.Future[None]]) -> None:
        for future in futures:
            if not future.done():
                future.set_result(None)

    async def _check(self, db: Database, key: tuple[int, str]) -> None:
        loop = asyncio.get_running_loop()
        try:
            finished = await loop.run_in_executor(self.executor, finished_among, db, [key[1]])
        except Exception:
            log.warning("checking a waited-for job failed; the poll will", exc_info=True)
            return
        if finished:
            self._wake(self._waiters.get(key, []))

    async def _poll(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiters:
            by_db: dict[int, list[str]] = {}
            for db_key, job_id in self._waiters:
                by_db.setdefault(db_key, []).append(job_id)
            for db_key, job_ids in by_db.items():
                check: Callable[[], set[str]] = lambda db=self._dbs[db_key], ids=job_ids: finished_among(db, ids)  # noqa: E731
                try:
                    finished = await loop.run_in_executor(self.executor, check)
                except Exception:
                    log.warning("polling waited-for jobs failed; trying again", exc_info=True)
                    finished = set()
                for job_id in finished:
                    self._wake(self._waiters.get((db_key, job_id), []))
            await asyncio.sleep(self.interval)
