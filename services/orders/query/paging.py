"""Keyset paging: an opaque, tamper-checked ``$skiptoken`` naming the last row of a page.

A token is ``base64url(JSON payload) "." base64url(HMAC-SHA256(secret, payload)[:16])``; the
payload holds the sort-key values of the last row served (the ``id`` among them) and a digest of
the query it belongs to, so a token is refused when edited, forged, or replayed against a
different ``$filter``/``$orderby``. The next page is "rows strictly after that key in the
ordering", which neither skips nor repeats a row when rows are inserted between pages (rows
inserted before the cursor are simply not seen; rows after it are).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import and_, literal, or_, tuple_
from sqlalchemy.sql.elements import ColumnElement

from services.kernel.errors import InvalidQuery
from services.orders.query.fields import SQL_TYPE_BY_KIND
from services.orders.query.orderby import OrderBy

PARAMETER = "$skiptoken"
MAX_TOKEN_LENGTH = 2000
_VERSION = 1


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def query_digest(*parts: str) -> str:
    """A short digest of the query text a token belongs to."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def _mac(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode(), payload, hashlib.sha256).digest()[:16]


def _dump(kind: str, value: Any) -> Any:
    if kind == "datetime":
        return value.isoformat()
    if kind == "money":
        return str(value)
    return value


def _load(kind: str, value: Any) -> Any:
    if kind == "datetime":
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("naive datetime")
        return parsed
    if kind == "money":
        return Decimal(value)
    if kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError("not an integer")
        return value
    if not isinstance(value, str):
        raise ValueError("not a string")
    return value


def encode_token(secret: str, orderby: OrderBy, values: list[Any], digest: str) -> str:
    """The token for "after the row whose sort-key values are ``values``" (one per key)."""
    payload = json.dumps(
        {"v": _VERSION, "q": digest, "k": [_dump(k.field.kind, v) for k, v in zip(orderby.keys, values, strict=True)]},
        separators=(",", ":"),
    ).encode()
    return f"{_b64encode(payload)}.{_b64encode(_mac(secret, payload))}"


def decode_token(secret: str, orderby: OrderBy, token: str, digest: str) -> list[Any]:
    """The sort-key values a token carries; :class:`InvalidQuery` if it is not one of ours for this query."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidQuery.at(PARAMETER, MAX_TOKEN_LENGTH, "token too long")
    body, dot, signature = token.partition(".")
    if not dot:
        raise InvalidQuery.at(PARAMETER, 0, "malformed token (use nextLink as given)")
    try:
        payload = _b64decode(body)
        mac = _b64decode(signature)
    except (binascii.Error, ValueError):
        raise InvalidQuery.at(PARAMETER, 0, "malformed token (use nextLink as given)") from None
    if not hmac.compare_digest(mac, _mac(secret, payload)):
        raise InvalidQuery.at(PARAMETER, 0, "token signature does not match (use nextLink as given)")
    try:
        data = json.loads(payload)
        if data.get("v") != _VERSION:
            raise ValueError("version")
        if data.get("q") != digest:
            raise InvalidQuery.at(PARAMETER, 0, "the token belongs to a different $filter or $orderby")
        raw = data["k"]
        if not isinstance(raw, list) or len(raw) != len(orderby.keys):
            raise ValueError("key count")
        return [_load(key.field.kind, value) for key, value in zip(orderby.keys, raw, strict=True)]
    except InvalidQuery:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, InvalidOperation):
        raise InvalidQuery.at(PARAMETER, 0, "malformed token (use nextLink as given)") from None


def after(orderby: OrderBy, values: list[Any]) -> ColumnElement[bool]:
    """Rows strictly after ``values`` in ``orderby``.

    When every key runs the same way this is one row-value comparison, ``(a, b) < (:a, :b)``,
    which both PostgreSQL and SQLite serve from a matching composite index; mixed directions
    expand to ``a > :a OR (a = :a AND b < :b) ...``.
    """
    keys = orderby.keys
    bound = [literal(value, SQL_TYPE_BY_KIND[key.field.kind]) for key, value in zip(keys, values, strict=True)]
    columns = [key.field.column for key in keys]
    if len({key.descending for key in keys}) == 1:
        if len(keys) == 1:
            return columns[0] < bound[0] if keys[0].descending else columns[0] > bound[0]
        row, cursor = tuple_(*columns), tuple_(*bound)
        return row < cursor if keys[0].descending else row > cursor
    alternatives = []
    for index, key in enumerate(keys):
        equal = [columns[j] == bound[j] for j in range(index)]
        beyond = columns[index] < bound[index] if key.descending else columns[index] > bound[index]
        alternatives.append(and_(*equal, beyond))
    return or_(*alternatives)
