"""CORS for the configured origins: preflights answered, the API's own headers exposed."""

from __future__ import annotations

from typing import Any

import falcon

ALLOWED_HEADERS = "Authorization, Content-Type, Idempotency-Key, Prefer, If-Match, X-Request-Id, Last-Event-ID"
EXPOSED_HEADERS = (
    "Location, ETag, Retry-After, X-Request-Id, Idempotent-Replayed, Preference-Applied, Content-Location, "
    "RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset"
)
ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"


class CORSMiddleware:
    def __init__(self, origins: tuple[str, ...]) -> None:
        self.allow_any = "*" in origins
        self.origins = frozenset(origins)

    def _allowed(self, origin: str | None) -> bool:
        return origin is not None and (self.allow_any or origin in self.origins)

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        origin = req.get_header("Origin")
        if req.method == "OPTIONS" and req.get_header("Access-Control-Request-Method"):
            resp.status = falcon.HTTP_204 if self._allowed(origin) else falcon.HTTP_403
            if self._allowed(origin):
                resp.set_header("Access-Control-Allow-Methods", ALLOWED_METHODS)
                resp.set_header("Access-Control-Allow-Headers", ALLOWED_HEADERS)
                resp.set_header("Access-Control-Max-Age", "600")
            resp.complete = True

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool) -> None:
        origin = req.get_header("Origin")
        resp.append_header("Vary", "Origin")
        if self._allowed(origin):
            resp.set_header("Access-Control-Allow-Origin", origin)
            resp.set_header("Access-Control-Expose-Headers", EXPOSED_HEADERS)
