"""``/healthz`` (the process answers) and ``/readyz`` (database and broker reachable, not draining).

``checks``: ``database``, ``broker`` (the one carrying Celery messages: ``BROKER_URL``) and, when
that is not Redis, ``redis`` (beat's schedule and lock). While the process drains after SIGTERM
(``WEB_DRAIN_SECONDS``) the answer is 503 with ``"status": "draining"``, whatever the checks say.
"""

from __future__ import annotations

import logging

import falcon

from api.deps import Deps
from api.draining import is_draining
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

    def _redis_ready(self) -> bool:
        try:
            return bool(self.deps.broker.ping())
        except Exception as exc:  # any failure means "not ready"
            log.warning("redis not ready: %r", exc)
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
        """Readiness: 503 with ``Retry-After`` unless the database and the broker answer (and the
        process is not draining after SIGTERM)."""
        message_broker = self.deps.message_broker
        checks = {"database": database_ready(self.deps.db), "broker": message_broker.ready()}
        if not message_broker.is_redis:
            checks["redis"] = self._redis_ready()
        draining = is_draining()
        ready = all(checks.values()) and not draining
        resp.status = falcon.HTTP_200 if ready else falcon.HTTP_503
        if not ready:
            resp.set_header("Retry-After", "5")
        status = "draining" if draining else "ready" if ready else "unavailable"
        resp.media = {"status": status, "checks": checks}
