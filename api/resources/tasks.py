"""``/api/tasks/{taskId}``: poll any job."""

from __future__ import annotations

import falcon

from api.async_answer import preferred_wait, wait_for_finish
from api.deps import Deps
from api.openapi import LONG_POLL, POLL_AFTER, WAITED, Reply, operation
from api.render import task_body
from api.schemas import TaskOut
from services.jobs.views import JobView, get_job

POLL_AFTER_SECONDS = 1


def _render_task(req: falcon.Request, resp: falcon.Response, job: JobView) -> None:
    """A waited-for task that finished: its body, as a poll at that moment would have read it."""
    resp.set_header("Preference-Applied", f"wait={preferred_wait(req.get_header('Prefer'))}")
    resp.media = task_body(job)


class TaskResource:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @operation(
        "getTask",
        tags=["tasks"],
        replies={200: Reply(TaskOut, "The task; `type` says which `result` it has.", (POLL_AFTER, WAITED))},
        errors=(404,),
        request_headers=(LONG_POLL,),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, task_id: str) -> None:
        """State, progress, result or error of a queued task; ``Retry-After`` while unfinished.

        ``Prefer: wait=N`` makes it a long poll: the answer comes as soon as the task finishes
        (woken by its completion notice), or after N seconds with the task still unfinished."""
        resp.append_header("Vary", "Prefer")
        wait = preferred_wait(req.get_header("Prefer"))
        if wait:
            job = wait_for_finish(req, resp.options, self.deps.db, task_id, wait, self.deps.notices, _render_task)
            if job.finished:
                resp.set_header("Preference-Applied", f"wait={wait}")
        else:
            job = get_job(self.deps.db, req.context.principal, task_id)
        if not job.finished:
            resp.set_header("Retry-After", str(POLL_AFTER_SECONDS))
        resp.media = task_body(job)
