"""Counts every request by route template and status, and observes its latency."""

from __future__ import annotations

import time
from typing import Any

import falcon

from api.async_answer import deferred_answer
from config.metrics import HTTP_LATENCY, HTTP_REQUESTS


class MetricsMiddleware:
    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.metrics_started = time.perf_counter()

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool) -> None:
        route = req.uri_template or "unmatched"
        started = req.context.metrics_started
        deferred = deferred_answer(req)
        if deferred is not None:  # counted with the status the client gets, once the front's wait ends
            deferred.finishers.append(lambda status, headers, body: self._observe(req.method, route, status, started))
            return
        self._observe(req.method, route, resp.status_code, started)

    @staticmethod
    def _observe(method: str, route: str, status: int, started: float) -> None:
        HTTP_REQUESTS.labels(method, route, str(status)).inc()
        HTTP_LATENCY.labels(method, route).observe(time.perf_counter() - started)
