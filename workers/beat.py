"""RedBeat, and a record of each tick in Redis so that beat's liveness can be watched.

Only the beat holding the lock ticks (a standby waits on the lock), so the key
``config.fleet.beat_key`` tells whether *some* beat is firing the schedule: ``/metrics`` exports
its age as ``orders_beat_last_tick_timestamp_seconds`` and the probe ``python -m workers probe beat``
fails when it is older than a minute. The record costs one SET per tick (at most every 5 s).
"""

from __future__ import annotations

from typing import Any

import redis
from redbeat import RedBeatScheduler
from redbeat.schedulers import get_redis

from config import fleet
from workers import runtime


class TickingScheduler(RedBeatScheduler):
    def tick(self, *args: Any, **kwargs: Any) -> float:
        remaining = super().tick(*args, **kwargs)
        try:
            fleet.record_beat_tick(get_redis(self.app), runtime.settings().queue_prefix)
        except redis.RedisError:
            pass  # the lock extension above fails the same way and restarts beat
        return remaining
