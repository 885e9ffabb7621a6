"""A task's progress as Server-Sent Events: what ``GET /api/tasks/{id}/events`` sends.

The stream is a series of snapshots of the job row: an ``event: progress`` whenever its progress
(``current``, ``total``) differs from the last one sent, then one final event named after the
finished state (``succeeded`` or ``failed``) carrying the task body of ``GET /api/tasks/{id}``, and
the end of the response. Each event has an ``id``: ``<current>-<total>`` for progress, the state
for the final one, so a client that reconnects with ``Last-Event-ID`` gets only what it has not
seen (a ``Last-Event-ID`` naming the final event is answered 204, which tells an ``EventSource``
to stop reconnecting).

Who waits between snapshots:

- served by the asyncio front (``api/serving``), the request thread reads the job once, renders
  what there is, and hands a :class:`TaskStream` to the front (:class:`StreamOffload` in the WSGI
  environ); the front sends the rest from its event loop, woken by the job's progress and
  completion notices (Redis pub/sub), and calls :meth:`TaskStream.read` (one query, in a pool
  thread) for each. An idle stream holds no thread (``api/serving/streams.py``);
- without a front (Falcon's test client, any other WSGI server) the request thread streams:
  :func:`in_thread` waits on completion notices and re-reads the job every
  :data:`IN_THREAD_READ_SECONDS`, for at most the stream's lifetime.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from api.media import dumps
from api.render import task_body
from models import Database
from services.jobs.views import JobView, get_job
from services.kernel.errors import TaskNotFound
from services.kernel.principal import Principal
from tasks.notices import NoticeListener

MEDIA_TYPE = "text/event-stream"
# The WSGI environ key under which a server that streams off-thread puts its StreamOffload.
STREAM_OFFLOAD_KEY = "orders.stream_offload"
# How long an EventSource waits before reconnecting once a stream ended (sent first, in ms).
RECONNECT_MS = 1000
KEEPALIVE = b": keep-alive\n\n"
IN_THREAD_READ_SECONDS = 0.5
MAX_EVENT_ID = 64


def progress_id(job: JobView) -> str:
    return f"{job.progress_current}-{job.progress_total}"


def event(name: str, event_id: str, data: object) -> bytes:
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (event_id.encode(), name.encode(), dumps(data))


def last_event_id(header: str | None) -> str | None:
    """The client's ``Last-Event-ID``, if it is one of ours (anything else: start afresh)."""
    if not header:
        return None
    value = header.strip()
    return value if 0 < len(value) <= MAX_EVENT_ID and value.isprintable() else None


@dataclass
class TaskStream:
    """One client's stream of one job: what it has been sent, and how to render what is new."""

    db: Database
    principal: Principal
    job_id: str
    last_id: str | None = None  # the last event the client has (Last-Event-ID, then what was sent)
    ended: bool = field(default=False)

    def seen_final(self, job: JobView) -> bool:
        """The client already has this finished job's final event."""
        return job.finished and self.last_id == job.state

    def render(self, job: JobView) -> bytes:
        """The events this job's row adds to what the client has; sets :attr:`ended` after the final one."""
        out = []
        pid = progress_id(job)
        if pid != self.last_id and not self.seen_final(job):
            body = task_body(job)
            out.append(event("progress", pid, {"taskId": job.id, "state": job.state, "progress": body["progress"]}))
            self.last_id = pid
        if job.finished:
            out.append(event(job.state, job.state, task_body(job)))
            self.last_id = job.state
            self.ended = True
        return b"".join(out)

    def read(self) -> bytes:
        """Read the job (one query; blocking) and render what is new. A job gone meanwhile ends the stream."""
        try:
            job = get_job(self.db, self.principal, self.job_id)
        except TaskNotFound:
            self.ended = True
            return b""
        return self.render(job)


def opening(first: bytes) -> bytes:
    """The first bytes of every stream: the reconnection delay, then the events there already are."""
    return b"retry: %d\n\n" % RECONNECT_MS + first


class StreamOffload:
    """Put in the environ (``STREAM_OFFLOAD_KEY``) by a server that streams off-thread."""

    def __init__(self) -> None:
        self.stream: TaskStream | None = None


def in_thread(
    stream: TaskStream, first: bytes, notices: NoticeListener | None, *, max_seconds: float, keepalive: float
) -> Iterator[bytes]:
    """The stream served from the request thread (no front): for at most ``max_seconds``."""
    yield first
    deadline = time.monotonic() + max_seconds
    last_sent = time.monotonic()
    while not stream.ended:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        pause = min(IN_THREAD_READ_SECONDS, remaining)
        if notices is not None:
            notices.wait(stream.job_id, pause)
        else:
            time.sleep(pause)
        chunk = stream.read()
        if chunk:
            last_sent = time.monotonic()
            yield chunk
        elif time.monotonic() - last_sent >= keepalive:
            last_sent = time.monotonic()
            yield KEEPALIVE
