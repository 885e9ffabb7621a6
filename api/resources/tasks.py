"""``/api/tasks/{taskId}``: poll any job."""

from __future__ import annotations

import falcon

from api.deps import Deps
from api.openapi import POLL_AFTER, Reply, operation
from api.render import task_body
from api.schemas import TaskOut
from services.jobs.views import get_job

POLL_AFTER_SECONDS = 1


class TaskResource:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @operation(
        "getTask",
        tags=["tasks"],
        replies={200: Reply(TaskOut, "The task; `type` says which `result` it has.", (POLL_AFTER,))},
        errors=(404,),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, task_id: str) -> None:
        """State, progress, result or error of a queued task; ``Retry-After`` while unfinished."""
        job = get_job(self.deps.db, req.context.principal, task_id)
        if not job.finished:
            resp.set_header("Retry-After", str(POLL_AFTER_SECONDS))
        resp.media = task_body(job)
