"""The OpenAPI 3.1 document (spectree) and a self-contained page to browse it.

Responders are decorated with ``spec.validate(..., skip_validation=True)``: the schemas document
the contract, while ``api.validation`` does the parsing so errors use the service's envelope.
"""

from __future__ import annotations

import html
from typing import Any

import falcon
from spectree import Response, SpecTree

from api.schemas import ErrorOut

spec = SpecTree(
    "falcon",
    title="Orders API",
    version="1.0.0",
    description=(
        "Orders, payments and lifecycle operations. Money is exact (two decimals, JSON numbers). "
        'Errors use one envelope: {"error": {"code", "message", "details", "requestId"}}.'
    ),
    mode="strict",
    path="api/docs",
    security_schemes=[
        {"name": "bearer", "data": {"type": "http", "scheme": "bearer", "description": "API key"}},
    ],
    security={"bearer": []},
)

ERRORS = {f"HTTP_{code}": ErrorOut for code in (400, 401, 403, 404, 409, 413, 422, 503)}


def responses(**ok: Any) -> Response:
    """A spectree Response with the success bodies given plus the shared error envelope."""
    return Response(**ok, **ERRORS)


def document(app: falcon.App) -> dict[str, Any]:
    spec.app = app
    if hasattr(spec, "_spec"):
        del spec._spec  # regenerate for this app's routes
    return spec.spec


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
