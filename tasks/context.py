"""The one per-process worker context: what every task of this process uses, beside the API's
``Deps``.

Built on first use in each process and again after a fork (keyed by the process id), so a prefork
child never reuses its parent's pooled database connections; nothing connects at import time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import redis
from celery import current_app

from config.settings import Settings
from models import Database
from services.payments.gateways.registry import Gateways
from tasks.dispatch import TaskSender
from workers import runtime


@dataclass(frozen=True)
class WorkerContext:
    settings: Settings
    db: Database
    gateways: Gateways
    sender: TaskSender
    redis: redis.Redis  # completion notices (tasks.notices)


_context: tuple[int, WorkerContext] | None = None


def worker_context() -> WorkerContext:
    """This process's context (settings from the Celery app that runs it, or the environment)."""
    global _context
    if _context is None or _context[0] != os.getpid():
        settings = runtime.settings()
        db = Database.connect(settings)
        notices = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=1, socket_timeout=1)
        _context = (
            os.getpid(),
            WorkerContext(
                settings, db, Gateways(settings, db), TaskSender(current_app, settings.queue_prefix), notices
            ),
        )
    return _context[1]
