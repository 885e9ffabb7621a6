"""``/healthz`` (the process answers) and ``/readyz`` (database and broker reachable)."""

from __future__ import annotations

import logging

import falcon

from api.deps import Deps
from api.openapi import RETRY_AFTER, Reply, operation
from api.schemas import HealthOut
from services.maintenance.health import database_ready

log = logging.getLogger(__name__)


class HealthResource:
    public = True

    @operation("health", tags=["health"], public=True, replies={200: Reply(HealthOut, "The process answers.")})
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Liveness: no dependency is touched."""
        resp.media = {"status": "ok"}


class ReadyResource:
    public = True

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def _broker_ready(self) -> bool:
        try:
            return bool(self.deps.broker.ping())
        except Exception as exc:  # any failure means "not ready"
            log.warning("broker not ready: %r", exc)
            return False

    @operation(
        "ready",
        tags=["health"],
        public=True,
        replies={
            200: Reply(HealthOut, "The database and the broker answer."),
            503: Reply(HealthOut, "One of them does not (`checks` says which).", (RETRY_AFTER,)),
        },
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Readiness: 503 with ``Retry-After`` unless the database and the broker answer."""
        checks = {"database": database_ready(self.deps.db), "broker": self._broker_ready()}
        ready = all(checks.values())
        resp.status = falcon.HTTP_200 if ready else falcon.HTTP_503
        if not ready:
            resp.set_header("Retry-After", "5")
        resp.media = {"status": "ready" if ready else "unavailable", "checks": checks}
