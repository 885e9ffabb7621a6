"""Turn a request body into a schema instance, or a 400 naming every bad field path."""

from __future__ import annotations

from typing import TypeVar

import falcon
from pydantic import BaseModel, ValidationError

from api.media import parse_json_body
from services.kernel.errors import ValidationFailed

ModelT = TypeVar("ModelT", bound=BaseModel)


def field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "$"


def parse_body(req: falcon.Request, model: type[ModelT]) -> ModelT:
    data = parse_json_body(req.context.raw_body, req.content_type)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = [
            {"field": field_path(error["loc"]), "message": error["msg"], "type": error["type"]}
            for error in exc.errors(include_url=False, include_input=False)
        ]
        raise ValidationFailed(details=details) from None


def parse_query(req: falcon.Request, model: type[ModelT]) -> ModelT:
    """The query string as a schema instance (each name once), or a 400 naming every bad parameter."""
    try:
        return model.model_validate(dict(req.params))
    except ValidationError as exc:
        details = [
            {"field": field_path(error["loc"]), "message": error["msg"], "type": error["type"]}
            for error in exc.errors(include_url=False, include_input=False)
        ]
        raise ValidationFailed("Invalid query parameters.", details=details) from None
