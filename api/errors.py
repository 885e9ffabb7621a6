"""The one place where errors become HTTP: a code → status table and Falcon error handlers.

Every error leaves as ``{"error": {"code", "message", "details", "requestId"}}``, whether it is a
domain error, a Falcon HTTP error (unknown route, wrong method), an unreachable backing service
(503 + ``Retry-After``) or a bug (a logged 500 without a stack trace in the body).
"""

from __future__ import annotations

import logging
from typing import Any

import falcon
import redis.exceptions
import sqlalchemy.exc
from kombu.exceptions import OperationalError as KombuOperationalError

from api.media import dumps
from services.kernel.errors import DomainError

log = logging.getLogger(__name__)

STATUS_BY_CODE: dict[str, int] = {
    "VALIDATION_ERROR": 400,
    "BAD_REQUEST": 400,
    "INVALID_QUERY": 400,
    "INVALID_STATUS": 400,
    "INVALID_SIGNATURE": 400,
    "INSUFFICIENT_INVENTORY": 400,
    "OFFER_NOT_FOUND": 400,
    "PRICE_MISMATCH": 400,
    "ITEM_NOT_FOUND": 400,
    "UNAUTHORIZED": 401,
    "PAYMENT_FAILED": 402,
    "FORBIDDEN": 403,
    "ORDER_NOT_FOUND": 404,
    "TASK_NOT_FOUND": 404,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "REQUEST_TIMEOUT": 408,
    "IDEMPOTENCY_KEY_IN_USE": 409,
    "EXPORT_EXPIRED": 410,
    "PRECONDITION_FAILED": 412,
    "PAYLOAD_TOO_LARGE": 413,
    "URI_TOO_LONG": 414,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "RANGE_NOT_SATISFIABLE": 416,
    "IDEMPOTENCY_KEY_REUSED": 422,
    "RATE_LIMITED": 429,
    "HEADERS_TOO_LARGE": 431,
    "INTERNAL_ERROR": 500,
    "NOT_IMPLEMENTED": 501,
    "SERVICE_UNAVAILABLE": 503,
}

# What the HTTP server itself answers before a request reaches the app (api/serving): a request it
# cannot parse, one over a size limit, one whose head or body does not arrive in time.
CODE_BY_PROTOCOL_STATUS: dict[int, tuple[str, str]] = {
    400: ("BAD_REQUEST", "The request is not valid HTTP/1.1"),
    408: ("REQUEST_TIMEOUT", "The request did not arrive in time"),
    413: ("PAYLOAD_TOO_LARGE", "The request body is over the limit"),
    414: ("URI_TOO_LONG", "The request line is over the limit"),
    431: ("HEADERS_TOO_LARGE", "A request header, or the number of headers, is over the limit"),
    501: ("NOT_IMPLEMENTED", "The request uses a transfer coding the server does not implement"),
    503: ("SERVICE_UNAVAILABLE", "The server is at its connection limit; retry later"),
}

CODE_BY_FALCON_STATUS: dict[int, str] = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    416: "RANGE_NOT_SATISFIABLE",
}

RETRY_AFTER_SECONDS = 5

UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    KombuOperationalError,
)


def status_for(code: str) -> int:
    return STATUS_BY_CODE.get(code, 500)


def envelope(req: falcon.Request, code: str, message: str, details: list[Any] | None = None) -> dict[str, Any]:
    return bare_envelope(code, message, details, getattr(req.context, "request_id", None))


def bare_envelope(code: str, message: str, details: list[Any] | None, request_id: str | None) -> dict[str, Any]:
    """The envelope without a Falcon request (the HTTP server's own answers)."""
    return {"error": {"code": code, "message": message, "details": details or [], "requestId": request_id}}


def protocol_error(status: int, detail: str | None, request_id: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of an answer the HTTP server gives itself (never HTML)."""
    fallback = ("BAD_REQUEST", "The request was refused") if status < 500 else ("INTERNAL_ERROR", "An error occurred")
    code, message = CODE_BY_PROTOCOL_STATUS.get(status, fallback)
    details = [{"reason": detail[:200]}] if detail else []
    body = dumps(bare_envelope(code, message, details, request_id))
    headers = [("Content-Type", falcon.MEDIA_JSON), ("X-Request-Id", request_id)]
    if code == "SERVICE_UNAVAILABLE":
        headers.append(("Retry-After", str(RETRY_AFTER_SECONDS)))
    return status, headers, body


def write_error(
    req: falcon.Request, resp: falcon.Response, code: str, message: str, details: list[Any] | None = None
) -> None:
    resp.status = status_for(code)
    resp.content_type = falcon.MEDIA_JSON
    resp.media = None
    resp.data = dumps(envelope(req, code, message, details))
    if code == "SERVICE_UNAVAILABLE":
        resp.set_header("Retry-After", str(RETRY_AFTER_SECONDS))
    if code == "UNAUTHORIZED":
        resp.set_header("WWW-Authenticate", 'Bearer realm="orders"')


def _domain_error(req: falcon.Request, resp: falcon.Response, ex: DomainError, params: dict[str, Any]) -> None:
    write_error(req, resp, ex.code, ex.message, ex.details)


def _http_error(req: falcon.Request, resp: falcon.Response, ex: falcon.HTTPError, params: dict[str, Any]) -> None:
    status = ex.status_code
    code = CODE_BY_FALCON_STATUS.get(status, "INTERNAL_ERROR" if status >= 500 else "VALIDATION_ERROR")
    message = ex.title or "Request failed"
    if ex.description:
        message = f"{message}: {ex.description}"
    write_error(req, resp, code, message)
    resp.status = status
    for name, value in (ex.headers or {}).items():
        resp.set_header(name, value)


def _unavailable(req: falcon.Request, resp: falcon.Response, ex: Exception, params: dict[str, Any]) -> None:
    log.warning("backing service unavailable: %r", ex)
    write_error(req, resp, "SERVICE_UNAVAILABLE", "A backing service is unreachable; retry later.")


def _unexpected(req: falcon.Request, resp: falcon.Response, ex: Exception, params: dict[str, Any]) -> None:
    if isinstance(ex, UNAVAILABLE_ERRORS):
        _unavailable(req, resp, ex, params)
        return
    log.exception("unhandled error")
    write_error(req, resp, "INTERNAL_ERROR", "An unexpected error occurred; it has been logged.")


def install_error_handlers(app: falcon.App) -> None:
    """Register the handlers; Falcon picks the most specific type for each exception."""
    app.add_error_handler(Exception, _unexpected)
    app.add_error_handler(falcon.HTTPError, _http_error)
    app.add_error_handler(DomainError, _domain_error)
    for error_type in UNAVAILABLE_ERRORS:
        app.add_error_handler(error_type, _unavailable)
