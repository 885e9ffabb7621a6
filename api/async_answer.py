"""Answering an async request: ``202`` + task, or — with ``Prefer: wait=N`` — the task's outcome.

``Prefer: wait=N`` (RFC 7240; N is capped at :data:`MAX_WAIT_SECONDS`) makes the API poll the
job row for up to N seconds. When the task finishes in time the answer is what a synchronous
call would have given (200 with the result, or the task's error status and envelope) with
``Preference-Applied: wait=N``; otherwise the usual 202. Every async endpoint answers through
:func:`answer_job`.

Served by the asyncio front (``api/serving``), the wait holds no request thread: the front puts a
:class:`WaitOffload` in the WSGI environ, :func:`answer_job` looks at the job once, and when it
has not finished yet it hands a :class:`DeferredAnswer` to the front instead of polling. The
request thread then finishes the request as a 202 that is held back, not sent; the front awaits
the job on its event loop and calls :meth:`DeferredAnswer.answer` (off the loop) for the response
the client gets: the same one the synchronous wait would have given. Middleware that records the
response (idempotency, metrics) registers a finisher on the deferred answer instead, so it
records what the client got. Without a front (Falcon's test client, any WSGI server) nothing
changes: the request thread polls.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import falcon

from api.errors import write_error
from models import Database
from services.jobs.views import JobView, get_job
from services.kernel.principal import Principal
from tasks.notices import NoticeListener

MAX_WAIT_SECONDS = 30
# A waiter woken by completion notices still reads the job this often, in case a notice was lost.
SAFETY_POLL_SECONDS = 0.5
POLL_AFTER_SECONDS = 1
# The WSGI environ key under which a server that can wait off-thread puts its WaitOffload.
WAIT_OFFLOAD_KEY = "orders.wait_offload"
# Headers of the held-back 202 that the final answer does not keep.
_ACCEPTED_ONLY = frozenset({"location", "retry-after", "content-type", "content-length"})

log = logging.getLogger(__name__)

# Called once the client's response is known: (status code, headers, body).
Finisher = Callable[[int, dict[str, str], bytes], None]
# Renders the response of a finished job into a fresh Response.
Renderer = Callable[[falcon.Request, falcon.Response, JobView], None]
_WAIT = re.compile(r'^\s*wait\s*=\s*"?(\d{1,6})"?\s*$', re.IGNORECASE)


def preferred_wait(header: str | None) -> int | None:
    """The ``wait`` preference of a ``Prefer`` header, capped; None when absent or malformed."""
    if not header:
        return None
    for preference in header.split(","):
        match = _WAIT.match(preference.split(";", 1)[0])
        if match:
            return min(int(match.group(1)), MAX_WAIT_SECONDS)
    return None


def wait_for_job(
    db: Database, principal: Principal, job_id: str, seconds: float, notices: NoticeListener | None = None
) -> JobView:
    """Wait until the job finished or ``seconds`` passed; returns the last view.

    Woken by the job's completion notice when there is a listener; the row is read again at
    least every :data:`SAFETY_POLL_SECONDS` in case a notice was lost.
    """
    deadline = time.monotonic() + seconds
    interval = 0.02
    while True:
        job = get_job(db, principal, job_id)
        remaining = deadline - time.monotonic()
        if job.finished or remaining <= 0:
            return job
        if notices is not None:
            notices.wait(job_id, min(SAFETY_POLL_SECONDS, remaining))
        else:
            time.sleep(min(interval, remaining))
            interval = min(interval * 1.5, 0.25)


@dataclass
class DeferredAnswer:
    """A ``Prefer: wait`` the front waits out on its event loop; the held-back 202 stands in."""

    req: falcon.Request
    resp_options: falcon.ResponseOptions
    db: Database
    job_id: str
    wait: int
    deadline: float  # time.monotonic() when the wait runs out
    notices: NoticeListener | None = None
    finishers: list[Finisher] = field(default_factory=list)
    render: Renderer | None = None  # None: as a synchronous call would answer (:func:`answer_job`)

    def answer(self, status: int, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        """The response for the client, given the held-back 202; runs the finishers. Blocking (DB).

        The job's outcome when it finished by now (as :func:`answer_job` renders it), else the 202.
        """
        try:
            job = get_job(self.db, self.req.context.principal, self.job_id)
            if job.finished:
                final = falcon.Response(options=self.resp_options)
                if self.render is not None:
                    self.render(self.req, final, job)
                else:
                    _render_finished(self.req, final, job, self.wait, self.job_id)
                kept = {name: value for name, value in headers.items() if name.lower() not in _ACCEPTED_ONLY}
                body = final.render_body() or b""
                # Falcon adds the default media type only when the app itself sends a response.
                kind = {"content-type": final.content_type or falcon.MEDIA_JSON}
                status, headers = final.status_code, {**kept, **kind, **final.headers}
        except Exception:
            log.exception("rendering a waited-for task failed; answering 202", extra={"task_id": self.job_id})
        for finish in self.finishers:
            try:
                finish(status, headers, body)
            except Exception:
                log.exception("a finisher of a waited-for answer failed")
        return status, headers, body


class WaitOffload:
    """Put in the environ (``WAIT_OFFLOAD_KEY``) by a server that waits for jobs off-thread."""

    def __init__(self) -> None:
        self.deferred: DeferredAnswer | None = None


def deferred_answer(req: falcon.Request) -> DeferredAnswer | None:
    """The answer this request handed to the front to wait for, if it did."""
    offload = req.env.get(WAIT_OFFLOAD_KEY)
    return offload.deferred if offload is not None else None


def _render_finished(req: falcon.Request, resp: falcon.Response, job: JobView, wait: int, job_id: str) -> None:
    resp.set_header("Preference-Applied", f"wait={wait}")
    if job.state == "succeeded":
        resp.status = falcon.HTTP_200
        resp.media = job.result
    else:
        error = job.error or {}
        write_error(
            req,
            resp,
            error.get("code", "INTERNAL_ERROR"),
            error.get("message", "The task failed."),
            error.get("details"),
        )
    resp.set_header("Content-Location", f"/api/tasks/{job_id}")


def wait_for_finish(
    req: falcon.Request,
    resp_options: falcon.ResponseOptions,
    db: Database,
    job_id: str,
    wait: int,
    notices: NoticeListener | None,
    render: Renderer | None = None,
) -> JobView:
    """The job as it is now, or finished: with the front, an unfinished job is handed to it to
    wait out on its event loop (the caller then renders the unfinished view, which the front
    holds back and replaces with ``render``'s answer if the job finishes in time); without one,
    this thread waits here."""
    offload: WaitOffload | None = req.env.get(WAIT_OFFLOAD_KEY)
    if offload is None:
        return wait_for_job(db, req.context.principal, job_id, wait, notices)
    job = get_job(db, req.context.principal, job_id)
    if not job.finished:
        deadline = time.monotonic() + wait
        offload.deferred = DeferredAnswer(req, resp_options, db, job_id, wait, deadline, notices, render=render)
    return job


def answer_job(
    req: falcon.Request, resp: falcon.Response, db: Database, job_id: str, notices: NoticeListener | None = None
) -> None:
    """Render the answer of a request that queued ``job_id`` (message already sent); ``notices``
    wakes a ``Prefer: wait`` as soon as the job finishes."""
    resp.append_header("Vary", "Prefer")
    wait = preferred_wait(req.get_header("Prefer"))
    if wait:
        job = wait_for_finish(req, resp.options, db, job_id, wait, notices)
        if job.finished:
            _render_finished(req, resp, job, wait, job_id)
            return
    resp.status = falcon.HTTP_202
    resp.location = f"/api/tasks/{job_id}"
    resp.set_header("Retry-After", str(POLL_AFTER_SECONDS))
    resp.media = {"taskId": job_id, "statusUrl": f"/api/tasks/{job_id}"}
