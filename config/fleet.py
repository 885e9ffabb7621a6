"""Where the workers and beat say they are alive: keys in Redis, read by ``/metrics`` and probes.

- ``<prefix>orders:workers:<hostname>``: each worker's main process rewrites it every
  :data:`WORKER_BEAT_SECONDS` (JSON: queues, concurrency, pid, time) with a TTL of
  :data:`WORKER_TTL_SECONDS`, from its own event loop, so a worker whose loop is wedged disappears
  from the count like a dead one. It is deleted at a clean shutdown.
- ``<prefix>orders:beat:last-tick``: the Unix time of the last tick of the beat holding the lock.

Plain Redis calls (no Celery): the web reads these for its metrics, the probes for liveness.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

WORKER_BEAT_SECONDS = 10
WORKER_TTL_SECONDS = 30


@dataclass(frozen=True)
class LiveWorker:
    hostname: str
    queues: tuple[str, ...]
    concurrency: int
    seen_at: float


def worker_key(prefix: str, hostname: str) -> str:
    return f"{prefix}orders:workers:{hostname}"


def beat_key(prefix: str) -> str:
    return f"{prefix}orders:beat:last-tick"


def announce_worker(
    client: redis.Redis, prefix: str, hostname: str, queues: list[str], concurrency: int, pid: int
) -> None:
    record = {"queues": queues, "concurrency": concurrency, "pid": pid, "at": time.time()}
    client.set(worker_key(prefix, hostname), json.dumps(record), ex=WORKER_TTL_SECONDS)


def retire_worker(client: redis.Redis, prefix: str, hostname: str) -> None:
    client.delete(worker_key(prefix, hostname))


def live_workers(client: redis.Redis, prefix: str) -> list[LiveWorker]:
    keys = sorted(client.scan_iter(match=worker_key(prefix, "*"), count=500))
    if not keys:
        return []
    found = []
    for key, raw in zip(keys, client.mget(keys), strict=True):
        if raw is None:
            continue  # expired between the scan and the read
        record: dict[str, Any] = json.loads(raw)
        name = key.decode() if isinstance(key, bytes) else str(key)
        found.append(
            LiveWorker(
                hostname=name.split("orders:workers:", 1)[1],
                queues=tuple(record.get("queues", ())),
                concurrency=int(record.get("concurrency", 0)),
                seen_at=float(record.get("at", 0.0)),
            )
        )
    return found


def record_beat_tick(client: redis.Redis, prefix: str) -> None:
    client.set(beat_key(prefix), repr(time.time()))


def beat_last_tick(client: redis.Redis, prefix: str) -> float | None:
    raw = client.get(beat_key(prefix))
    return float(raw) if raw is not None else None
