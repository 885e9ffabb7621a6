"""URI template fields and query parameters holding U+0000 are refused at the edge.

PostgreSQL text cannot hold NUL: psycopg refuses to send it, so ``GET /api/orders/%00`` (or a
task, offer, key, checkout or sandbox session id, or a query parameter, carrying it) was a 500 on
PostgreSQL and a plain 404 on SQLite. No id or parameter of ours has a use for it, so every
route refuses it alike, before any lookup, as ``api.media`` does for JSON bodies. OData system
options (``$filter`` …) are left to the query language, which answers ``INVALID_QUERY`` with the
position, as for any other character it cannot accept.
"""

from __future__ import annotations

import re
from typing import Any

import falcon

from services.kernel.errors import ValidationFailed

_NUL = "\x00"


def _api_name(field: str) -> str:
    """``order_id`` (a URI template field) → ``orderId``, the name the contract uses."""
    return re.sub(r"_([a-z])", lambda match: match.group(1).upper(), field)


def _refuse(field: str) -> ValidationFailed:
    return ValidationFailed(
        "The request names a value no resource can hold.",
        details=[{"field": field, "message": "must not contain the NUL character"}],
    )


class NulParamsMiddleware:
    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]
    ) -> None:
        for name, value in params.items():
            if isinstance(value, str) and _NUL in value:
                raise _refuse(_api_name(name))
        for name, value in req.params.items():
            if name.startswith("$"):
                continue  # query options: the query language refuses NUL with INVALID_QUERY and its position
            values = value if isinstance(value, list) else [value]
            if _NUL in name or any(_NUL in item for item in values):
                raise _refuse(name.replace(_NUL, "\\u0000"))
