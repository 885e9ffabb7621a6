"""The OpenAPI 3.1 document (spectree) and a self-contained page to browse it.

Responders are decorated with :func:`operation`, which registers the request and response models
with spectree (``skip_validation=True``: the schemas document the contract, while
``api.validation`` does the parsing so errors use the service's envelope) and records what
spectree cannot say: request headers (``Idempotency-Key``, ``Prefer``, ``If-Match``), response
headers, bodies that are not JSON (CSV, XLSX, plain text), and the description of each status.
:func:`document` merges both into the served document.

The document is written for the tools clients use: component names are the models' plain names
(a generator makes class names of them; spectree's default ``Model.<hash>`` breaks several), every
status an operation really answers is declared with its body, and every other one falls under
``default``, the error envelope.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import falcon
from pydantic import BaseModel
from spectree import Response, SpecTree

from api.schemas import AcceptedOut, ErrorOut

F = TypeVar("F", bound=Callable[..., Any])

_NAMES: dict[str, type] = {}


def component_name(model: Any) -> str:
    """A model's plain class name; two models may never share one (the document would be ambiguous)."""
    name = model.__name__
    known = _NAMES.setdefault(name, model)
    if known is not model:
        raise RuntimeError(f"two models are both named {name}: {known.__module__} and {model.__module__}")
    return name


spec = SpecTree(
    "falcon",
    title="Orders API",
    version="1.0.0",
    description=(
        "Orders, payments and lifecycle operations. Money is exact: JSON numbers with at most two decimal "
        "places. Timestamps are UTC ISO 8601 to the second (`2026-06-02T10:30:00Z`). "
        'Errors use one envelope: {"error": {"code", "message", "details", "requestId"}}. '
        "Every response carries `X-Request-Id` (echoed when the request sent a sane one)."
    ),
    mode="strict",
    path="api/docs",
    security_schemes=[
        {"name": "bearer", "data": {"type": "http", "scheme": "bearer", "description": "API key"}},
    ],
    security={"bearer": []},
    naming_strategy=component_name,
    nested_naming_strategy=lambda _parent, child: child,
    # Malformed input is 400 VALIDATION_ERROR in the envelope; spectree's 422 model is never sent.
    validation_error_status=400,
    validation_error_model=ErrorOut,
)


# -- headers ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False

    def parameter(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": "header",
            "required": self.required,
            "description": self.description,
            "schema": self.schema,
        }

    def response(self) -> dict[str, Any]:
        return {"description": self.description, "required": self.required, "schema": self.schema}


SECONDS = {"type": "string", "pattern": "^[0-9]+$"}

IDEMPOTENCY_KEY = Header(
    "Idempotency-Key",
    "Makes the POST safe to retry: the first response (status and body) is stored for 24 h and replayed, with "
    "`Idempotent-Replayed: true`, for the same key and body; the same key with another body is 422 "
    "IDEMPOTENCY_KEY_REUSED, and while the first request runs it is 409 IDEMPOTENCY_KEY_IN_USE. Scoped per API key.",
    {"type": "string", "minLength": 1, "maxLength": 255},
)
PREFER = Header(
    "Prefer",
    "`wait=N` (RFC 7240, N at most 30): wait up to N seconds for the task and, if it finished, answer as a "
    "synchronous call would (200 with the result, or the task's error status), with `Preference-Applied`.",
    {"type": "string", "examples": ["wait=10"]},
)
LONG_POLL = Header(
    "Prefer",
    "`wait=N` (RFC 7240, N at most 30): a long poll. The answer comes as soon as the task finishes (with "
    "`Preference-Applied`), or after N seconds with the task still unfinished.",
    {"type": "string", "examples": ["wait=10"]},
)
IF_MATCH = Header(
    "If-Match",
    'The order\'s ETag (`"<version>"`): a stale one is 412 PRECONDITION_FAILED with `details[0].currentVersion`.',
    {"type": "string", "examples": ['"3"']},
)
RANGE = Header("Range", "One byte range (`bytes=0-1023`); a multi-range or malformed one is ignored.")
IF_RANGE = Header("If-Range", "The file's ETag: the range is served only while the file is that one.")

REQUEST_ID = Header(
    "X-Request-Id", "This request's id, in every log line of it and of the tasks it queued.", required=True
)
REPLAYED = Header("Idempotent-Replayed", "`true` when this is the stored answer to an earlier request with this key.")
LOCATION = Header("Location", "Where the created or queued thing is.", required=True)
ETAG = Header("ETag", 'The order\'s version as an entity tag (`"3"`), for If-Match.', required=True)
RETRY_AFTER = Header("Retry-After", "Seconds to wait before asking again.", SECONDS, required=True)
POLL_AFTER = Header("Retry-After", "While the task is unfinished: seconds to wait before polling again.", SECONDS)
PREFERENCE_APPLIED = Header("Preference-Applied", "`wait=N` when the answer is the task's outcome.")
WAITED = Header("Preference-Applied", "`wait=N` when the task finished while the request waited for it.")
CONTENT_LOCATION = Header("Content-Location", "With Preference-Applied: the task this is the outcome of.")
RATELIMIT_HEADERS = (
    Header("RateLimit-Limit", "Requests this API key may make per window (its role's limit).", SECONDS),
    Header("RateLimit-Remaining", "Requests left in the current window.", SECONDS),
    Header("RateLimit-Reset", "Seconds until one more request is allowed again.", SECONDS),
)
WWW_AUTHENTICATE = Header("WWW-Authenticate", '`Bearer realm="orders"`.', required=True)


# -- replies ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One documented status: its JSON body (a model) or other ``content``, headers, description."""

    model: type[BaseModel] | None = None
    description: str = ""
    headers: tuple[Header, ...] = ()
    content: dict[str, dict[str, Any]] | None = None  # media type -> schema, for bodies that are not JSON


ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "VALIDATION_ERROR (each bad field in `details`), or the operation's own 400 codes.",
    401: "UNAUTHORIZED: no API key, or not a valid one.",
    402: "PAYMENT_FAILED: the gateway declined or failed the payment (`details` carries the reason).",
    403: "FORBIDDEN: the key's role may not do this.",
    404: "Not found (or another customer's): ORDER_NOT_FOUND, TASK_NOT_FOUND, NOT_FOUND.",
    409: "IDEMPOTENCY_KEY_IN_USE: the first request with this Idempotency-Key is still running.",
    410: "EXPORT_EXPIRED: the link or the file has expired.",
    412: "PRECONDITION_FAILED: If-Match names a stale version (`details[0].currentVersion`).",
    413: "PAYLOAD_TOO_LARGE: the body is over the limit, or too many ids.",
    416: "RANGE_NOT_SATISFIABLE: the range lies outside the file (`Content-Range: bytes */size`).",
    422: "IDEMPOTENCY_KEY_REUSED: this Idempotency-Key was used with another body.",
    429: "RATE_LIMITED: this API key is over its rate limit; retry after `Retry-After` seconds.",
    503: "SERVICE_UNAVAILABLE: the database or the broker is unreachable; retry after `Retry-After`.",
}
ERROR_HEADERS: dict[int, tuple[Header, ...]] = {
    401: (WWW_AUTHENTICATE,),
    416: (Header("Content-Range", "`bytes */<size>`.", required=True),),
    429: (RETRY_AFTER,),
    503: (RETRY_AFTER,),
}
DEFAULT_REPLY = "Any other status (a 5xx included): the error envelope."


@dataclass(frozen=True)
class OperationDoc:
    request_headers: tuple[Header, ...]
    replies: dict[int, Reply]
    errors: tuple[int, ...]
    idempotent: bool
    limited: bool = False  # needs an API key, so it is rate limited and says how much is left


_OPERATIONS: dict[str, OperationDoc] = {}


def operation(
    operation_id: str,
    *,
    tags: list[str],
    replies: dict[int, Reply],
    errors: Iterable[int] = (),
    json: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    request_headers: tuple[Header, ...] = (),
    idempotent: bool = False,
    public: bool = False,
) -> Callable[[F], F]:
    """Document a responder: spectree gets the models, :func:`document` the rest.

    Every operation may answer 400 (a NUL character in a parameter is refused before routing); one
    with a ``json`` body 413; one that needs an API key 401, 429 and 503 (the key is looked up in the
    database and counted against its rate limit, whose ``RateLimit-*`` headers every answer carries).
    ``idempotent`` marks a POST that honours ``Idempotency-Key`` (every authenticated POST): it adds
    the header, 409, 422 and ``Idempotent-Replayed``. ``errors`` adds the rest.
    """
    implied = {400} | ({413} if json is not None else set()) | ({409, 422} if idempotent else set())
    codes = tuple(sorted(set(errors) | implied | (set() if public else {401, 429, 503})))
    models: dict[str, Any] = {f"HTTP_{code}": reply.model for code, reply in replies.items()}
    models.update({f"HTTP_{code}": ErrorOut for code in codes})
    if operation_id in _OPERATIONS:
        raise RuntimeError(f"operation id {operation_id} is used twice")
    headers = ((IDEMPOTENCY_KEY,) if idempotent else ()) + request_headers
    _OPERATIONS[operation_id] = OperationDoc(headers, replies, codes, idempotent, limited=not public)
    options: dict[str, Any] = {
        "resp": Response(**models),
        "tags": tags,
        "operation_id": operation_id,
        "skip_validation": True,
    }
    if json is not None:
        options["json"] = json
    if query is not None:
        options["query"] = query
    if public:
        options["security"] = {}
    return spec.validate(**options)


def queued(result: type[BaseModel], result_description: str) -> dict[int, Reply]:
    """The replies of an operation that queues a task and honours ``Prefer: wait=N``."""
    return {
        202: Reply(
            AcceptedOut,
            "Queued: poll the task (`Location`); with `Prefer: wait=N`, the task did not finish in time.",
            (LOCATION, RETRY_AFTER),
        ),
        200: Reply(
            result,
            f"With `Prefer: wait=N`, the task finished in time: {result_description}",
            (PREFERENCE_APPLIED, CONTENT_LOCATION),
        ),
    }


# -- the document -------------------------------------------------------------------------------------


def _error_response(code: int) -> dict[str, Any]:
    return {
        "description": ERROR_DESCRIPTIONS.get(code, "The error envelope."),
        "headers": {header.name: header.response() for header in ERROR_HEADERS.get(code, ())},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
    }


def _complete(op: dict[str, Any], doc: OperationDoc) -> None:
    op["parameters"] = op.get("parameters", []) + [header.parameter() for header in doc.request_headers]
    responses = op["responses"]
    for code, reply in doc.replies.items():
        response = responses[str(code)]
        if reply.description:
            response["description"] = reply.description
        if reply.content is not None:
            response["content"] = {media: {"schema": schema} for media, schema in reply.content.items()}
        headers = reply.headers + ((REPLAYED,) if doc.idempotent else ())
        response["headers"] = {header.name: header.response() for header in headers}
    for code in doc.errors:
        responses[str(code)] = _error_response(code)
        if doc.idempotent and code not in (409, 429):
            responses[str(code)]["headers"][REPLAYED.name] = REPLAYED.response()
    responses["default"] = {**_error_response(0), "description": DEFAULT_REPLY}
    for status, response in responses.items():
        headers = response.setdefault("headers", {})
        headers[REQUEST_ID.name] = REQUEST_ID.response()
        if doc.limited and status != "401":
            for header in RATELIMIT_HEADERS:
                headers[header.name] = {**header.response(), "required": status == "429"}


def document(app: falcon.App) -> dict[str, Any]:
    """The OpenAPI document of ``app``'s documented routes (spectree's, completed by :func:`operation`)."""
    spec.app = app
    if hasattr(spec, "_spec"):
        del spec._spec  # regenerate for this app's routes
    doc = spec.spec
    # spectree's Falcon plugin backslash-escapes characters of static segments (``/api/orders/$count``).
    doc["paths"] = {re.sub(r"\\(.)", r"\1", path): operations for path, operations in doc["paths"].items()}
    for operations in doc["paths"].values():
        for op in operations.values():
            found = _OPERATIONS.get(op["operationId"])
            if found is None:
                raise RuntimeError(f"{op['operationId']} is documented without api.openapi.operation()")
            _complete(op, found)
    return doc


class OpenAPIResource:
    public = True

    def __init__(self, app: falcon.App) -> None:
        self.app = app
        self._doc: dict[str, Any] | None = None

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self._doc is None:
            self._doc = document(self.app)
        resp.media = self._doc


class DocsPageResource:
    """A plain HTML index of operations (no CDN scripts, so it works offline)."""

    public = True

    def __init__(self, app: falcon.App) -> None:
        self.app = app

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        doc = document(self.app)
        rows = []
        for path, operations in sorted(doc.get("paths", {}).items()):
            for method, op in operations.items():
                if not isinstance(op, dict):
                    continue
                summary = html.escape(op.get("summary") or op.get("description") or "")
                rows.append(
                    f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code></td><td>{summary}</td></tr>"
                )
        resp.content_type = falcon.MEDIA_HTML
        resp.text = (
            "<!doctype html><html><head><meta charset='utf-8'><title>Orders API</title>"
            "<style>body{font-family:sans-serif;margin:2em}td{padding:4px 12px;border-bottom:1px solid #ddd}</style>"
            "</head><body><h1>Orders API</h1><p>Machine-readable document: "
            "<a href='/api/openapi.json'>/api/openapi.json</a></p><table>" + "".join(rows) + "</table></body></html>"
        )
