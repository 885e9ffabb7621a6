"""Rate limits per API key (``services.access.rate_limits``), after authentication.

Every answer to a request with a valid key carries ``RateLimit-Limit``, ``RateLimit-Remaining``
and ``RateLimit-Reset`` (seconds; IETF draft "RateLimit header fields for HTTP"); past the limit
the request is refused with 429 ``RATE_LIMITED`` and ``Retry-After`` before anything else runs
(no idempotency key is claimed). When Redis cannot be asked, the request goes through without
these headers and is counted in ``orders_rate_limit_unchecked_total``.
"""

from __future__ import annotations

from typing import Any

import falcon

from config.metrics import RATE_LIMIT_UNCHECKED, RATE_LIMITED
from services.access.rate_limits import RateLimiter
from services.kernel.errors import RateLimited

LIMIT, REMAINING, RESET = "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"


class RateLimitMiddleware:
    def __init__(self, limiter: RateLimiter | None) -> None:
        self.limiter = limiter

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]
    ) -> None:
        principal = getattr(req.context, "principal", None)
        if principal is None or self.limiter is None:
            return
        decision = self.limiter.check(principal.key_id, principal.role)
        if decision is None:
            return
        if not decision.checked:
            RATE_LIMIT_UNCHECKED.inc()
            return
        resp.set_header(LIMIT, str(decision.limit))
        resp.set_header(REMAINING, str(decision.remaining))
        resp.set_header(RESET, str(decision.reset_seconds))
        if not decision.allowed:
            RATE_LIMITED.labels(principal.role).inc()
            resp.set_header("Retry-After", str(decision.reset_seconds))
            raise RateLimited(
                details=[{"limit": decision.limit, "retryAfterSeconds": decision.reset_seconds}],
            )
