"""Reads each request body once, refusing bodies over the limit before parsing them.

A body framed by ``Transfer-Encoding: chunked`` has no Content-Length; the server decodes the
chunks and ``wsgi.input`` ends where the body ends, so it is read from the stream (still at most
one byte over the limit). The asyncio front (``api/serving``) buffers bodies and passes a
Content-Length, so this branch serves other WSGI servers that de-chunk (gunicorn's own workers)
and a chunked body the front stopped reading at the limit.
"""

from __future__ import annotations

import falcon

from services.kernel.errors import PayloadTooLarge

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class BodyLimitMiddleware:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.raw_body = b""
        if req.method not in BODY_METHODS:
            return
        limit = self.max_bytes
        if req.content_length is not None and req.content_length > limit:
            raise PayloadTooLarge(details=[{"limitBytes": limit, "contentLength": req.content_length}])
        if req.content_length is None and "chunked" in (req.get_header("Transfer-Encoding") or "").lower():
            raw = req.stream.read(limit + 1)
        else:
            raw = req.bounded_stream.read(limit + 1)
        if len(raw) > limit:
            raise PayloadTooLarge(details=[{"limitBytes": limit}])
        req.context.raw_body = raw
