"""``/healthz`` (the process answers) and ``/readyz`` (database and broker reachable)."""

from __future__ import annotations

import logging

import falcon

from api.deps import Deps
from api.openapi import responses, spec
from api.schemas import HealthOut
from services.maintenance.health import database_ready

log = logging.getLogger(__name__)


class HealthResource:
    public = True

    @spec.validate(resp=responses(HTTP_200=HealthOut), tags=["health"], skip_validation=True, security={})
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

    @spec.validate(resp=responses(HTTP_200=HealthOut), tags=["health"], skip_validation=True, security={})
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Readiness: 503 with ``Retry-After`` unless the database and the broker answer."""
        checks = {"database": database_ready(self.deps.db), "broker": self._broker_ready()}
        ready = all(checks.values())
        resp.status = falcon.HTTP_200 if ready else falcon.HTTP_503
        if not ready:
            resp.set_header("Retry-After", "5")
        resp.media = {"status": "ready" if ready else "unavailable", "checks": checks}
