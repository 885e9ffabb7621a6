"""The front's side of ``GET /api/tasks/{id}/events``: task streams served from the event loop.

The request thread authorized the request, read the job once and rendered its first events
(``api.task_events``); the front sends those, then holds the connection on the loop. A stream
wakes when its job's progress or completion notice arrives (one Redis pub/sub subscription per web
process, on the loop, to both channels: ``tasks.progress_notices`` and ``tasks.notices``) and
reads the job again in a pool thread (one query); what is new goes out at once. There is no
polling interval: the only reads without a notice are the safety read every
:data:`SAFETY_READ_SECONDS` (a notice lost while Redis was away) and one at the start.

Bounds, per stream: a comment every ``keepalive`` seconds of silence; the response ends after
``max_seconds`` (the client reconnects with ``Last-Event-ID``), at once when the client goes away,
and when the worker shuts down. An idle stream costs a socket and a few objects on the loop, no
thread; open connections are bounded by ``WEB_CONNECTIONS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio

from api.task_events import KEEPALIVE, TaskStream
from tasks.notices import CHANNEL as FINISHED_CHANNEL
from tasks.progress_notices import CHANNEL as PROGRESS_CHANNEL

log = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Any]
Receive = Callable[[], Any]

SAFETY_READ_SECONDS = 10.0  # README, "Task progress streams"
RESUBSCRIBE_SECONDS = 1.0


@dataclass(frozen=True)
class StreamOptions:
    redis_url: str
    max_seconds: float = 300.0
    keepalive_seconds: float = 15.0


class TaskStreams:
    """Every task stream of one web process, and the notice subscription that wakes them."""

    def __init__(self, executor: Executor, options: StreamOptions) -> None:
        self.executor = executor
        self.options = options
        self._wakers: dict[str, set[asyncio.Event]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._released: asyncio.Event | None = None
        self.subscribed = False

    @property
    def open(self) -> int:
        return sum(len(events) for events in self._wakers.values())

    def start(self) -> None:
        """Subscribe now (at the worker's start-up, on its loop), so the first stream misses no notice."""
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._listen())

    def release_all(self) -> None:
        """The worker stops: every stream ends now (its client reconnects elsewhere with Last-Event-ID)."""
        self._release_event().set()
        if self._listener is not None:
            self._listener.cancel()

    def _release_event(self) -> asyncio.Event:
        if self._released is None:
            self._released = asyncio.Event()
        return self._released

    def notify(self, job_id: str) -> None:
        for waker in self._wakers.get(job_id, ()):
            waker.set()

    def _notify_all(self) -> None:
        for wakers in self._wakers.values():
            for waker in wakers:
                waker.set()

    async def _listen(self) -> None:
        while not self._release_event().is_set():
            client = redis.asyncio.Redis.from_url(
                self.options.redis_url, socket_connect_timeout=2, socket_keepalive=True
            )
            try:
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(FINISHED_CHANNEL, PROGRESS_CHANNEL)
                self.subscribed = True
                self._notify_all()  # what was missed while (re)subscribing: every stream looks again
                async for message in pubsub.listen():
                    data = message.get("data")
                    if isinstance(data, bytes):
                        self.notify(data.decode())
            except (redis.RedisError, OSError) as exc:
                log.info("task stream notices unavailable, resubscribing: %r", exc)
            finally:
                self.subscribed = False
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(RESUBSCRIBE_SECONDS)

    async def serve(
        self,
        send: Send,
        receive: Receive,
        status: int,
        headers: list[tuple[str, str]],
        first: bytes,
        stream: TaskStream,
    ) -> None:
        """Send the response head and ``first``, then the stream's events as they happen."""
        loop = asyncio.get_running_loop()
        kept = [(name, value) for name, value in headers if name.lower() != "content-length"]
        await send({"type": "http.response.start", "status": status, "headers": _encode(kept)})
        await send({"type": "http.response.body", "body": first, "more_body": True})
        waker = asyncio.Event()
        waker.set()  # read once now: a notice may have come between the request's read and this registration
        self._wakers.setdefault(stream.job_id, set()).add(waker)
        gone = loop.create_task(_disconnected(receive))
        released = loop.create_task(self._release_event().wait())
        options = self.options
        deadline = loop.time() + options.max_seconds
        last_sent = next_read = loop.time()
        try:
            while not released.done() and not gone.done():
                now = loop.time()
                if now >= deadline:
                    break
                if waker.is_set() or now >= next_read:
                    waker.clear()
                    next_read = now + SAFETY_READ_SECONDS
                    try:
                        chunk = await loop.run_in_executor(self.executor, stream.read)
                    except Exception:
                        log.warning("reading a streamed task failed; the stream ends", exc_info=True)
                        break
                    if chunk:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                        last_sent = loop.time()
                    if stream.ended:
                        break
                    continue
                if now - last_sent >= options.keepalive_seconds:
                    await send({"type": "http.response.body", "body": KEEPALIVE, "more_body": True})
                    last_sent = now
                    continue
                woken = loop.create_task(waker.wait())
                timeout = min(deadline, next_read, last_sent + options.keepalive_seconds) - now
                try:
                    await asyncio.wait({woken, gone, released}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    woken.cancel()
        finally:
            wakers = self._wakers.get(stream.job_id)
            if wakers is not None:
                wakers.discard(waker)
                if not wakers:
                    del self._wakers[stream.job_id]
            released.cancel()
            gone.cancel()
        await send({"type": "http.response.body", "body": b"", "more_body": False})  # ignored once the client left


async def _disconnected(receive: Receive) -> None:
    """Return once the client went away (the request has no body left to read)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


def _encode(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
