"""JSON in and out with exact money: numbers parse to ``Decimal`` and leave as JSON numbers."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import falcon
import msgspec

from services.kernel.errors import ValidationFailed
from services.kernel.jsondepth import MAX_JSON_DEPTH, nests_deeper_than

_encoder = msgspec.json.Encoder(decimal_format="number")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads(raw: bytes | str) -> Any:
    """Parse JSON with floats as ``Decimal``; NaN and Infinity are refused."""
    return json.loads(raw, parse_float=Decimal, parse_constant=_reject_constant)


def dumps(value: Any) -> bytes:
    return _encoder.encode(value)


class JSONHandler(falcon.media.BaseHandler):
    """Falcon media handler built on :func:`loads` and :func:`dumps`."""

    def deserialize(self, stream: Any, content_type: str | None, content_length: int | None) -> Any:
        return loads(stream.read())

    def serialize(self, media: Any, content_type: str | None) -> bytes:
        return dumps(media)


def parse_json_body(raw: bytes, content_type: str | None) -> dict[str, Any]:
    """The request body as a JSON object, or :class:`ValidationFailed` saying what is wrong."""
    if content_type and not content_type.split(";")[0].strip().lower().endswith("json"):
        raise ValidationFailed(
            "The body must be JSON.", details=[{"field": "Content-Type", "message": "use application/json"}]
        )
    if not raw.strip():
        raise ValidationFailed("A JSON body is required.", details=[{"field": "$", "message": "body is empty"}])
    try:
        data = loads(raw)
    except json.JSONDecodeError as exc:
        raise ValidationFailed(
            "Malformed JSON.", details=[{"field": "$", "message": exc.msg, "line": exc.lineno, "column": exc.colno}]
        ) from None
    except RecursionError:
        raise _too_deep() from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationFailed("Malformed JSON.", details=[{"field": "$", "message": str(exc)[:200]}]) from None
    if not isinstance(data, dict):
        raise ValidationFailed(
            "The body must be a JSON object.", details=[{"field": "$", "message": "expected an object"}]
        )
    if nests_deeper_than(data):
        # Checked before anything walks the value recursively (the NUL check below, pydantic).
        raise _too_deep()
    nul = _nul_path(data, "")
    if nul is not None:
        # PostgreSQL text cannot hold U+0000 (psycopg raises, which would be a 500); no field of
        # ours has a use for it, so it is refused at the edge on every database alike.
        raise ValidationFailed(details=[{"field": nul or "$", "message": "must not contain the NUL character"}])
    return data


def _too_deep() -> ValidationFailed:
    """``json.loads`` gives up with RecursionError near the interpreter's limit (its depth varies
    with the stack it is called from); anything deeper than any body of ours is refused alike."""
    return ValidationFailed(
        "The JSON body nests too deeply.",
        details=[{"field": "$", "message": f"nested deeper than {MAX_JSON_DEPTH} levels"}],
    )


def _nul_path(value: Any, path: str) -> str | None:
    """The field path of the first string (value or key) holding U+0000, or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if "\x00" in key:
                return child
            found = _nul_path(item, child)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def send_json(resp: falcon.Response, body: Any) -> None:
    """Render ``body`` to bytes now, instead of leaving it in ``resp.media``.

    spectree's response hook walks ``resp.media`` recursively looking for pydantic models even
    with ``skip_validation=True`` (about 10 ms for a page of 50 orders); it leaves ``resp.data``
    alone, so large bodies are rendered here.
    """
    resp.content_type = falcon.MEDIA_JSON
    resp.data = dumps(body)
