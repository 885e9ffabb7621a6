"""The message broker as the web sees it: is it reachable, and how many messages wait per queue.

Celery messages travel on ``BROKER_URL`` (Redis by default, or RabbitMQ); Redis stays the store of
beat's schedule and the fleet's liveness keys. Readiness and the queue-depth gauge ask the broker
that really carries the messages:

- Redis: ``PING`` and ``LLEN`` of each queue's list (kombu keeps a queue as a list of that name);
- RabbitMQ: a connection, and a passive ``queue.declare`` per queue (its ``message_count``).

A RabbitMQ answer is kept for :data:`CACHE_SECONDS`, so probes and scrapes from several sources
open at most one AMQP connection per process every few seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import redis
from kombu import Connection

from config.settings import Settings

log = logging.getLogger(__name__)
CACHE_SECONDS = 5.0


class MessageBroker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.celery_broker_url
        self.is_redis = settings.broker_is_redis
        self._redis = (
            redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=1, health_check_interval=10)
            if self.is_redis
            else None
        )
        self._lock = threading.Lock()
        self._cached: tuple[float, bool, dict[str, int] | None] | None = None

    def ready(self) -> bool:
        if self._redis is not None:
            try:
                return bool(self._redis.ping())
            except redis.RedisError as exc:
                log.warning("broker not ready: %r", exc)
                return False
        return self._amqp(())[0]

    def depths(self, queues: Sequence[str]) -> dict[str, int] | None:
        """Messages waiting per (logical) queue name; None when the broker does not answer."""
        names = [self.settings.queue_name(queue) for queue in queues]
        if self._redis is not None:
            try:
                with self._redis.pipeline(transaction=False) as pipe:
                    for name in names:
                        pipe.llen(name)
                    found = pipe.execute()
            except redis.RedisError as exc:
                log.warning("queue depth unavailable: %r", exc)
                return None
            return {queue: int(depth) for queue, depth in zip(queues, found, strict=True)}
        return self._amqp(queues)[1]

    def _amqp(self, queues: Sequence[str]) -> tuple[bool, dict[str, int] | None]:
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < CACHE_SECONDS:
                if not queues or self._cached[2] is not None:
                    return self._cached[1], self._cached[2]
            ready, depths = self._ask_amqp(queues)
            self._cached = (now, ready, depths if queues else None)
            return ready, depths

    def _ask_amqp(self, queues: Sequence[str]) -> tuple[bool, dict[str, int] | None]:
        try:
            with Connection(self.url, connect_timeout=1, transport_options={"max_retries": 0}) as conn:
                conn.ensure_connection(max_retries=1, timeout=1)
                depths: dict[str, int] = {}
                for queue in queues:
                    channel = conn.channel()
                    try:
                        _, count, _ = channel.queue_declare(self.settings.queue_name(queue), passive=True)
                        depths[queue] = int(count)
                    except Exception:  # the queue does not exist yet (no worker declared it): empty
                        depths[queue] = 0
                    finally:
                        try:
                            channel.close()
                        except Exception:  # a channel the broker closed after a 404 is gone already
                            pass
                return True, depths if queues else None
        except Exception as exc:  # any failure means "not ready"
            log.warning("broker not ready: %r", exc)
            return False, None
