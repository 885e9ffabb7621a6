"""Counts every request by route template and status, and observes its latency."""

from __future__ import annotations

import time
from typing import Any

import falcon

from config.metrics import HTTP_LATENCY, HTTP_REQUESTS


class MetricsMiddleware:
    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.metrics_started = time.perf_counter()

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool) -> None:
        route = req.uri_template or "unmatched"
        HTTP_REQUESTS.labels(req.method, route, str(resp.status_code)).inc()
        HTTP_LATENCY.labels(req.method, route).observe(time.perf_counter() - req.context.metrics_started)
