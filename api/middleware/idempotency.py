"""``Idempotency-Key`` on POST: the first response is stored and replayed for the same request.

Responses are stored when the request reached a definite answer (2xx and 4xx, except 409 and
429, which describe a passing state). A 5xx releases the key so the client can simply retry.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import falcon

from api.async_answer import deferred_answer
from models import Database
from services.access import idempotency
from services.access.idempotency import StoredResponse

REPLAYED_HEADERS = ("Location", "ETag", "Retry-After", "Preference-Applied", "Content-Location")
NOT_STORED = frozenset({409, 429})


class IdempotencyMiddleware:
    def __init__(self, db: Database, ttl_seconds: int) -> None:
        self.db = db
        self.ttl = timedelta(seconds=ttl_seconds)

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]
    ) -> None:
        req.context.idempotency_record = None
        key = req.get_header("Idempotency-Key")
        principal = getattr(req.context, "principal", None)
        if req.method != "POST" or key is None or principal is None:
            return
        request_fingerprint = idempotency.fingerprint(req.method, req.path, req.query_string, req.context.raw_body)
        claim = idempotency.claim(self.db, principal.key_id, key, request_fingerprint, self.ttl)
        if claim.replay is not None:
            stored = claim.replay
            resp.status = stored.status
            resp.content_type = stored.headers.get("Content-Type", falcon.MEDIA_JSON)
            resp.data = (stored.body or "").encode()
            for name in REPLAYED_HEADERS:
                if name in stored.headers:
                    resp.set_header(name, stored.headers[name])
            resp.set_header("Idempotent-Replayed", "true")
            resp.complete = True
            return
        req.context.idempotency_record = claim.record_id

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool) -> None:
        record_id = getattr(req.context, "idempotency_record", None)
        if record_id is None:
            return
        deferred = deferred_answer(req)
        if deferred is not None:
            # The front waits for the task: the key stays in flight (409 to a concurrent retry, as
            # during a synchronous wait) and the answer the client gets is stored once it is known.
            deferred.finishers.append(lambda status, headers, body: self._store(record_id, status, headers, body))
            return
        self._store(record_id, resp.status_code, resp.headers, resp.render_body() or b"")

    def _store(self, record_id: str, status: int, headers: dict[str, str], body: bytes) -> None:
        if status >= 500 or status in NOT_STORED:
            idempotency.release(self.db, record_id)
            return
        by_name = {name.lower(): value for name, value in headers.items()}
        kept = {name: by_name[name.lower()] for name in REPLAYED_HEADERS if by_name.get(name.lower())}
        kept["Content-Type"] = by_name.get("content-type") or falcon.MEDIA_JSON
        idempotency.complete(
            self.db,
            record_id,
            StoredResponse(status=status, body=body.decode() if body else None, headers=kept),
        )
