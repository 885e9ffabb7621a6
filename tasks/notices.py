"""Completion notices: a worker announces every job it finished on a Redis channel, so a request
waiting for that job (``Prefer: wait``) wakes at once instead of at its next look at the database.

A notice only says "look again": the waiter reads the job row, so a lost notice costs the
waiter's safety-net poll and a stray one costs a read, never a wrong answer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

import redis

log = logging.getLogger(__name__)

CHANNEL = "orders:jobs:finished"
RECONNECT_SECONDS = 1.0


def announce(client: redis.Redis, job_ids: Iterable[str | None]) -> None:
    """Publish that ``job_ids`` finished (best effort: Redis being away never fails a job)."""
    ids = [job_id for job_id in job_ids if job_id]
    if not ids:
        return
    try:
        with client.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.publish(CHANNEL, job_id)
            pipe.execute()
    except redis.RedisError as exc:
        log.info("completion notice not published: %r", exc)


class NoticeListener:
    """One subscriber thread per process, started on first use, for every waiter of the process."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self._callbacks: list[Callable[[str], None]] = []
        self._events: dict[str, list[threading.Event]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.subscribed = threading.Event()

    def start(self) -> None:
        """Subscribe now (a web process does at start-up), so the first waiter misses no notice."""
        self._start()

    def add_callback(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(job_id)`` (on the listener's thread) for every notice."""
        with self._lock:
            self._callbacks.append(callback)
        self._start()

    def wait(self, job_id: str, timeout: float) -> bool:
        """Block until a notice for ``job_id`` arrives or ``timeout`` passes; True on a notice."""
        event = threading.Event()
        with self._lock:
            self._events.setdefault(job_id, []).append(event)
        self._start()
        try:
            return event.wait(timeout)
        finally:
            with self._lock:
                waiting = self._events.get(job_id, [])
                if event in waiting:
                    waiting.remove(event)
                if not waiting:
                    self._events.pop(job_id, None)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="completion-notices", daemon=True)
                self._thread.start()

    def _dispatch(self, job_id: str) -> None:
        with self._lock:
            events = list(self._events.get(job_id, ()))
            callbacks = list(self._callbacks)
        for event in events:
            event.set()
        for callback in callbacks:
            try:
                callback(job_id)
            except Exception:
                log.exception("a completion-notice callback failed")

    def _run(self) -> None:
        while True:
            try:
                client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=2, health_check_interval=10)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CHANNEL)
                self.subscribed.set()
                for message in pubsub.listen():
                    data = message.get("data")
                    if isinstance(data, bytes):
                        self._dispatch(data.decode())
            except redis.RedisError as exc:
                self.subscribed.clear()
                log.info("completion notices unavailable, resubscribing: %r", exc)
                time.sleep(RECONNECT_SECONDS)
