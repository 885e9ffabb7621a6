"""Liveness probes for processes that serve no HTTP (Kubernetes ``exec`` probes, or cron checks).

- ``probe worker [--hostname NAME] [--max-age S]``: a worker of this host (its Celery hostname
  ends with ``@<this host's name>``, or is NAME) announced itself in Redis within S seconds
  (default 30). The announcement comes from the worker's event loop, so a wedged worker fails it.
- ``probe beat [--max-age S]``: the beat holding the RedBeat lock ticked within S seconds (default
  60). A standby beat passes while the active one ticks, and if neither does, both are restarted.

Exit 0 when alive, 1 with one line saying what is missing.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time

import redis

from config import fleet
from config.settings import Settings


def main(settings: Settings, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers probe")
    parser.add_argument("what", choices=["worker", "beat"])
    parser.add_argument("--hostname", default=None, help="the worker's Celery hostname (default: any on this host)")
    parser.add_argument("--max-age", type=float, default=None, help="seconds")
    args = parser.parse_args(argv)
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        if args.what == "beat":
            return _beat(client, settings, args.max_age or 60.0)
        return _worker(client, settings, args.hostname, args.max_age or float(fleet.WORKER_TTL_SECONDS))
    except redis.RedisError as exc:
        print(f"probe {args.what}: Redis unreachable ({exc})", file=sys.stderr)
        return 1


def _beat(client: redis.Redis, settings: Settings, max_age: float) -> int:
    tick = fleet.beat_last_tick(client, settings.queue_prefix)
    if tick is None or time.time() - tick > max_age:
        age = "never" if tick is None else f"{time.time() - tick:.0f} s ago"
        print(f"probe beat: no beat ticked within {max_age:g} s (last tick: {age})", file=sys.stderr)
        return 1
    return 0


def _worker(client: redis.Redis, settings: Settings, hostname: str | None, max_age: float) -> int:
    suffix = "@" + socket.gethostname()
    now = time.time()
    mine = [
        worker
        for worker in fleet.live_workers(client, settings.queue_prefix)
        if (worker.hostname == hostname if hostname else worker.hostname.endswith(suffix))
    ]
    if not any(now - worker.seen_at <= max_age for worker in mine):
        wanted = hostname or "*" + suffix
        print(f"probe worker: no worker {wanted} announced itself within {max_age:g} s", file=sys.stderr)
        return 1
    return 0
