"""The front's task streams (``api.serving.streams``) on a bare event loop, with a stand-in job.

What the loop does between notices: nothing (no read without a notice but the first), a notice
sends what is new at once, a keep-alive comment after the silence bound, and the stream ends at its
lifetime, when the client goes away (its registration dropped) or when the worker shuts down.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from api.serving.streams import StreamOptions, TaskStreams
from api.task_events import KEEPALIVE


@dataclass
class StandIn:
    """A stream whose reads return queued chunks; the last one may end it."""

    job_id: str = "task_1"
    chunks: list[bytes] = field(default_factory=list)
    end_after: bool = False
    reads: int = 0
    ended: bool = False

    def read(self) -> bytes:
        self.reads += 1
        if not self.chunks:
            return b""
        chunk = self.chunks.pop(0)
        if not self.chunks and self.end_after:
            self.ended = True
        return chunk


class Client:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.gone = asyncio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    @property
    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.sent if m["type"] == "http.response.body"]

    @property
    def finished(self) -> bool:
        return bool(self.sent) and self.sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def _streams(**options: float) -> TaskStreams:
    return TaskStreams(ThreadPoolExecutor(2), StreamOptions("redis://127.0.0.1:1/0", **options))


async def _until(predicate: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def test_a_notice_sends_what_is_new_and_the_final_chunk_ends_it():
    async def scenario() -> tuple[Client, StandIn, TaskStreams]:
        streams, client, stream = _streams(), Client(), StandIn()
        serving = asyncio.create_task(
            streams.serve(client.send, client.receive, 200, [("Content-Length", "7")], b"opening", stream)
        )
        await _until(lambda: stream.reads == 1)  # the one read at registration
        await asyncio.sleep(0.2)
        assert stream.reads == 1  # nothing is polled between notices
        stream.chunks, stream.end_after = [b"progress"], False
        streams.notify("task_1")
        await _until(lambda: b"progress" in client.bodies)
        stream.chunks, stream.end_after = [b"final"], True
        streams.notify("task_other")  # another job's notice wakes nobody here
        await asyncio.sleep(0.1)
        assert b"final" not in client.bodies
        streams.notify("task_1")
        await asyncio.wait_for(serving, 5)
        return client, stream, streams

    client, stream, streams = _run(scenario())
    start = client.sent[0]
    assert start["type"] == "http.response.start"
    assert (b"content-length", b"7") not in start["headers"]  # a stream has no length
    assert client.bodies == [b"opening", b"progress", b"final", b""]
    assert client.finished and streams.open == 0


def test_keepalive_comments_and_the_lifetime_bound():
    async def scenario() -> Client:
        streams, client = _streams(max_seconds=0.5, keepalive_seconds=0.1), Client()
        await asyncio.wait_for(streams.serve(client.send, client.receive, 200, [], b"", StandIn()), 5)
        return client

    client = _run(scenario())
    assert client.bodies.count(KEEPALIVE) >= 3
    assert client.finished


def test_the_client_going_away_ends_the_stream_and_its_registration():
    async def scenario() -> TaskStreams:
        streams, client = _streams(), Client()
        serving = asyncio.create_task(streams.serve(client.send, client.receive, 200, [], b"", StandIn()))
        await _until(lambda: streams.open == 1)
        client.gone.set()
        await asyncio.wait_for(serving, 5)
        return streams

    assert _run(scenario()).open == 0


def test_shutdown_ends_every_stream_at_once():
    async def scenario() -> list[Client]:
        streams = _streams()
        clients = [Client() for _ in range(3)]
        serving = [
            asyncio.create_task(streams.serve(c.send, c.receive, 200, [], b"", StandIn(job_id=f"task_{i}")))
            for i, c in enumerate(clients)
        ]
        await _until(lambda: streams.open == 3)
        streams.release_all()
        await asyncio.wait_for(asyncio.gather(*serving), 5)
        return clients

    assert all(client.finished for client in _run(scenario()))
