"""``/api/tasks/{taskId}/events``: a task's progress and outcome as Server-Sent Events."""

from __future__ import annotations

import falcon

from api.deps import Deps
from api.openapi import Header, Reply, operation
from api.task_events import (
    MEDIA_TYPE,
    STREAM_OFFLOAD_KEY,
    StreamOffload,
    TaskStream,
    in_thread,
    last_event_id,
    opening,
)
from services.jobs.views import get_job

LAST_EVENT_ID = Header(
    "Last-Event-ID",
    "The `id` of the last event received (an EventSource sends it when it reconnects): only newer events are "
    "sent; the final event's id answers 204. A value that is not an id of this stream (over 64 characters, "
    "say) is ignored.",
)
STREAM_DESCRIPTION = (
    "Server-Sent Events (`text/event-stream`), pushed as they happen. `event: progress` "
    '(`id: <current>-<total>`, `data: {"taskId", "state", "progress": {"current", "total", "percent"}}`) '
    "whenever the progress changes, then one final event named after the finished state (`event: succeeded` "
    "or `event: failed`, `id` the same) whose `data` is the task as `GET /api/tasks/{taskId}` shows it, and "
    "the end of the stream. Comments (`: keep-alive`) keep an idle connection open; a stream that lasts "
    "longer than the server's bound ends without a final event and the client reconnects with "
    "`Last-Event-ID` (the stream starts with `retry: 1000`)."
)

# OpenAPI 3.1 has a text/event-stream `schema` describe each event as an SSE parser reads it.
EVENT_SCHEMA = {
    "type": "object",
    "description": "One event of the stream (comments and the opening `retry` carry no data).",
    "required": ["event", "id", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["progress", "succeeded", "failed"]},
        "id": {"type": "string", "description": "`<current>-<total>` for progress; the state for the final event."},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": 'progress: `{"taskId", "state", "progress"}`; final: the task, as getTask answers.',
        },
        "retry": {"type": "integer", "minimum": 0},
    },
}


class TaskEventsResource:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @operation(
        "streamTaskEvents",
        tags=["tasks"],
        request_headers=(LAST_EVENT_ID,),
        replies={
            200: Reply(
                description=STREAM_DESCRIPTION,
                headers=(Header("Cache-Control", "`no-store`."),),
                content={MEDIA_TYPE: EVENT_SCHEMA},
            ),
            204: Reply(description="`Last-Event-ID` names the final event: there is nothing more to send."),
        },
        errors=(404,),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, task_id: str) -> None:
        """The task's progress and final state as they happen (Server-Sent Events); the same scoping as getTask."""
        job = get_job(self.deps.db, req.context.principal, task_id)
        stream = TaskStream(
            self.deps.db, req.context.principal, task_id, last_event_id(req.get_header("Last-Event-ID"))
        )
        if stream.seen_final(job):
            resp.status = falcon.HTTP_204
            return
        first = opening(stream.render(job))
        resp.content_type = MEDIA_TYPE
        resp.set_header("Cache-Control", "no-store")
        resp.set_header("X-Accel-Buffering", "no")  # a proxy in front must not buffer the stream
        offload: StreamOffload | None = req.env.get(STREAM_OFFLOAD_KEY)
        if stream.ended or offload is not None:
            resp.data = first
            if not stream.ended:
                offload.stream = stream  # the front sends the rest from its event loop
            return
        settings = self.deps.settings
        resp.stream = in_thread(
            stream,
            first,
            self.deps.notices,
            max_seconds=settings.task_stream_max_seconds,
            keepalive=settings.task_stream_keepalive_seconds,
        )
