"""Answering an async request: ``202`` + task, or — with ``Prefer: wait=N`` — the task's outcome.

``Prefer: wait=N`` (RFC 7240; N is capped at :data:`MAX_WAIT_SECONDS`) makes the API poll the
job row for up to N seconds. When the task finishes in time the answer is what a synchronous
call would have given (200 with the result, or the task's error status and envelope) with
``Preference-Applied: wait=N``; otherwise the usual 202. Every async endpoint answers through
:func:`answer_job`.
"""

from __future__ import annotations

import re
import time

import falcon

from api.errors import write_error
from models import Database
from services.jobs.views import JobView, get_job
from services.kernel.principal import Principal

MAX_WAIT_SECONDS = 30
POLL_AFTER_SECONDS = 1
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


def wait_for_job(db: Database, principal: Principal, job_id: str, seconds: float) -> JobView:
    """Poll the job row until it finished or ``seconds`` passed; returns the last view."""
    deadline = time.monotonic() + seconds
    interval = 0.02
    while True:
        job = get_job(db, principal, job_id)
        remaining = deadline - time.monotonic()
        if job.finished or remaining <= 0:
            return job
        time.sleep(min(interval, remaining))
        interval = min(interval * 1.5, 0.25)


def answer_job(req: falcon.Request, resp: falcon.Response, db: Database, job_id: str) -> None:
    """Render the answer of a request that queued ``job_id`` (message already sent)."""
    resp.append_header("Vary", "Prefer")
    wait = preferred_wait(req.get_header("Prefer"))
    if wait:
        job = wait_for_job(db, req.context.principal, job_id, wait)
        if job.finished:
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
            return
    resp.status = falcon.HTTP_202
    resp.location = f"/api/tasks/{job_id}"
    resp.set_header("Retry-After", str(POLL_AFTER_SECONDS))
    resp.media = {"taskId": job_id, "statusUrl": f"/api/tasks/{job_id}"}
