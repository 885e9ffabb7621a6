"""``X-Request-Id``: echoed when the client sent a sane one, generated otherwise, and bound
to every log line written while handling the request (and to the tasks it queues)."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import falcon
import structlog

from api.async_answer import deferred_answer
from models.ids import new_id

_SAFE = re.compile(r"^[A-Za-z0-9._:\-]{1,100}$")
access_log = structlog.get_logger("api.access")


def request_id_for(given: str | None) -> str:
    """The client's ``X-Request-Id`` when it is sane, else a new id."""
    return given if given and _SAFE.match(given) else new_id("req")


class RequestIdMiddleware:
    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.request_id = request_id_for(req.get_header("X-Request-Id"))
        req.context.started = time.perf_counter()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=req.context.request_id)

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool) -> None:
        resp.set_header("X-Request-Id", req.context.request_id)
        deferred = deferred_answer(req)
        if deferred is not None:  # logged with the status the client gets, once the front's wait ends
            deferred.finishers.append(lambda status, headers, body: self._log(req, status))
        else:
            self._log(req, resp.status_code if hasattr(resp, "status_code") else resp.status)
        structlog.contextvars.clear_contextvars()

    @staticmethod
    def _log(req: falcon.Request, status: int | str) -> None:
        if logging.getLogger("api.access").isEnabledFor(logging.INFO):
            with structlog.contextvars.bound_contextvars(request_id=req.context.request_id):
                access_log.info(
                    "request",
                    method=req.method,
                    path=req.path,
                    status=status,
                    ms=round((time.perf_counter() - req.context.started) * 1000, 2),
                )
