"""The ``worker`` and ``beat`` programs as this service runs them (``app.Worker``/``app.Beat``).

What they change of Celery's own:

- **No banners on stdout.** Celery prints its start-up banner (and beat its own) as coloured text,
  which a JSON log pipeline cannot parse; with ``LOG_FORMAT=json`` (the default) the same facts
  are one structured log line, and the ``worker: Warm shutdown`` notes Celery writes from its
  signal handlers are JSON lines too. ``LOG_FORMAT=console`` keeps Celery's banners.
- **Queue names** given with ``--queues`` are the logical ones (``payments``); ``QUEUE_PREFIX``
  is applied here, so every way of starting a worker (``python -m workers``, ``celery -A workers``)
  consumes the deployment's own queues.
- **Liveness**: once consuming, the worker's main process announces itself in Redis every
  ``config.fleet.WORKER_BEAT_SECONDS`` from its event loop (the worker count in ``/metrics``, the
  Kubernetes probe ``python -m workers probe worker``), and serves this host's metrics on
  ``WORKER_METRICS_PORT`` when set (a worker-only host has no web process to scrape).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import redis
import structlog
from celery import __version__ as celery_version
from celery.apps import worker as celery_worker
from celery.apps.beat import Beat as CeleryBeat
from celery.apps.worker import Worker as CeleryWorker
from celery.utils.text import str_to_list

from config import fleet
from config.metrics import start_metrics_server
from workers import runtime

log = structlog.get_logger("workers")


def _json_say(message: str, file: Any = None) -> None:
    """Celery's ``safe_say`` (called inside signal handlers) as one JSON line, written without
    taking the logging lock a signal may have interrupted."""
    line = {"event": message.strip(), "level": "warning", "logger": "celery.worker", "timestamp": _now()}
    os.write(sys.__stderr__.fileno(), (json.dumps(line) + "\n").encode())


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"


class Worker(CeleryWorker):
    def on_before_init(self, **kwargs: Any) -> None:
        super().on_before_init(**kwargs)
        if runtime.settings().log_json:
            celery_worker.safe_say = _json_say
        self._fleet: redis.Redis | None = None

    def setup_queues(self, include: Any, exclude: Any = None) -> None:
        settings = runtime.settings()
        include = [settings.queue_name(name) for name in str_to_list(include or [])]
        exclude = [settings.queue_name(name) for name in str_to_list(exclude or [])]
        super().setup_queues(include, exclude)

    def emit_banner(self) -> None:
        settings = runtime.settings()
        if not settings.log_json:
            super().emit_banner()
            return
        log.info(
            "worker starting",
            hostname=self.hostname,
            celery=celery_version,
            broker=self.app.connection().as_uri(),
            queues=sorted(self.app.amqp.queues.consume_from),
            concurrency=self.concurrency,
            pool=getattr(self.pool_cls, "__module__", str(self.pool_cls)),
            soft_shutdown_seconds=self.app.conf.worker_soft_shutdown_timeout,
        )

    def on_consumer_ready(self, consumer: Any) -> None:
        super().on_consumer_ready(consumer)
        settings = runtime.settings()
        if settings.worker_metrics_port:
            start_metrics_server(settings.worker_metrics_port)
            log.info("worker metrics served", port=settings.worker_metrics_port)
        self._fleet = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=1, socket_timeout=1)
        self._announce()
        consumer.timer.call_repeatedly(fleet.WORKER_BEAT_SECONDS, self._announce)

    def _announce(self) -> None:
        if self._fleet is None:
            return
        settings = runtime.settings()
        queues = sorted(name.removeprefix(settings.queue_prefix) for name in self.app.amqp.queues.consume_from)
        try:
            fleet.announce_worker(
                self._fleet, settings.queue_prefix, self.hostname, queues, int(self.concurrency or 0), os.getpid()
            )
        except redis.RedisError as exc:  # Redis away: the worker goes on; the count shows it missing
            log.warning("worker liveness not written", error=repr(exc))

    def on_stopped(self) -> None:
        if self._fleet is not None:
            try:
                fleet.retire_worker(self._fleet, runtime.settings().queue_prefix, self.hostname)
            except redis.RedisError:
                pass  # the key expires on its own
        super().on_stopped()


class Beat(CeleryBeat):
    def run(self) -> None:
        if runtime.settings().log_json:
            self.quiet = True  # the banner below is a log line instead
            log.info(
                "beat starting",
                celery=celery_version,
                broker=self.app.connection().as_uri(),
                scheduler=str(self.scheduler_cls),
                max_interval=self.max_interval,
            )
        super().run()
