"""After a request that may have committed events, nudge the webhook dispatcher.

Any successful POST, PUT, PATCH or DELETE may have written events (an order placed, a status
changed, items cancelled): the nudge (``tasks.webhooks.DispatchNudge``) only sets a flag that a
background thread turns into at most one dispatch message per 50 ms, so the request pays nothing
for it and a subscriber's receiver, however slow, is never on the request's path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import falcon

_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class EventNudgeMiddleware:
    def __init__(self, nudge: Callable[[], None]) -> None:
        self.nudge = nudge

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool) -> None:
        if req_succeeded and req.method in _WRITES and resp.status_code < 400:
            self.nudge()
