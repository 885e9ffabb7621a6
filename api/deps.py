"""What resources need, built once by the app factory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import redis

from api.broker import MessageBroker
from config.settings import Settings
from models import Database
from services.access.keys import KeyCache
from services.access.rate_limits import RateLimiter
from services.payments.gateways.registry import Gateways
from tasks.dispatch import TaskSender
from tasks.notices import NoticeListener


@dataclass
class Deps:
    settings: Settings
    db: Database
    sender: TaskSender
    # Redis (REDIS_URL): beat's schedule and lock, the fleet's liveness keys. The Celery messages
    # travel on ``message_broker`` (BROKER_URL: the same Redis by default, or RabbitMQ).
    broker: redis.Redis
    gateways: Gateways
    keys: KeyCache
    notices: NoticeListener
    message_broker: MessageBroker
    # After commits that may have written events: wake the webhook dispatcher (tasks.webhooks).
    nudge: Callable[[], None] = lambda: None
    # Rate limits per API key, counted in Redis (REDIS_URL); None: no limits.
    limiter: RateLimiter | None = None
