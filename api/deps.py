"""What resources need, built once by the app factory."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from config.settings import Settings
from models import Database
from services.access.keys import KeyCache
from services.payments.gateways.registry import Gateways
from tasks.dispatch import TaskSender
from tasks.notices import NoticeListener


@dataclass
class Deps:
    settings: Settings
    db: Database
    sender: TaskSender
    broker: redis.Redis
    gateways: Gateways
    keys: KeyCache
    notices: NoticeListener
