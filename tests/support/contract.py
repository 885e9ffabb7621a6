"""Every response the suite receives is checked against the served OpenAPI document.

:class:`Contract` finds the documented operation of a request (the path templates of the document,
matched the way Falcon routes: a static segment wins over a field), the response object of its
status (the code, else its ``NXX`` range, else ``default``), and checks what a client relies on:
the status is declared, the media type is one the response declares, a JSON body validates with
a JSON Schema 2020-12 validator (``jsonschema.Draft202012Validator``; OpenAPI 3.1 schemas are that
dialect), a text body against its string schema and each event of an event stream against the
event schema, and every required response header is there
and matches its schema. A mismatch is a :class:`ContractViolation` (an ``AssertionError``), which
fails the test that made the request.

Paths the document does not describe (the sandbox's hosted pages, the checkout return pages) and
methods it does not list for a path (HEAD, OPTIONS, a 405) are counted, not checked.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator

JSON_MEDIA = re.compile(r"^application/(.+\+)?json$")
SSE_MEDIA = "text/event-stream"


def sse_events(body: bytes) -> list[dict[str, Any]]:
    """A Server-Sent Events body as a parser reads it: one object per event with data (``data``,
    ``event``, and ``id``/``retry`` when sent); comments and data-less blocks are not events."""
    events = []
    for block in re.split(r"\r\n\r\n|\n\n|\r\r", body.decode()):
        fields: dict[str, Any] = {}
        data = []
        for line in re.split(r"\r\n|\r|\n", block):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "retry" and value.isdigit():
                fields["retry"] = int(value)
            elif name in ("event", "id"):
                fields[name] = value
        if data:
            events.append({"event": "message", **fields, "data": "\n".join(data)})
    return events


class ContractViolation(AssertionError):
    """A response differs from what the document says about it."""


@dataclass(frozen=True)
class _Route:
    template: str
    pattern: re.Pattern[str]
    fields: int


def _route(template: str) -> _Route:
    parts = re.split(r"(\{[^}]+\})", template)
    regex = "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts)
    return _Route(template, re.compile(f"^{regex}$"), sum(part.startswith("{") for part in parts))


def _instances(media: str, body: bytes, text: str | None) -> list[Any]:
    """What a body's schema describes: the JSON value, the text, each event of a stream, or nothing."""
    if media == SSE_MEDIA:
        return sse_events(body)  # OpenAPI 3.1: the schema of text/event-stream describes each event
    if JSON_MEDIA.match(media):
        return [json.loads(body)] if body else []
    if media.startswith("text/"):
        return [text if text is not None else body.decode()]
    return []  # a binary file: its media type is all a schema can say


def _media(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


@dataclass
class Contract:
    document: dict[str, Any]
    validated: int = 0
    by_operation: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        # Falcon prefers a static segment to a field: fewest fields first.
        self._routes = sorted((_route(path) for path in self.document["paths"]), key=lambda r: r.fields)
        self._validators: dict[str, Draft202012Validator] = {}

    def operations(self) -> list[str]:
        return [
            op["operationId"]
            for methods in self.document["paths"].values()
            for op in methods.values()
            if isinstance(op, dict) and "operationId" in op
        ]

    def _validator(self, schema: dict[str, Any]) -> Draft202012Validator:
        key = json.dumps(schema, sort_keys=True)
        validator = self._validators.get(key)
        if validator is None:
            # Refs are "#/components/schemas/X": resolve them within a root that carries the components.
            root = {**schema, "components": self.document["components"]}
            Draft202012Validator.check_schema(root)
            validator = self._validators[key] = Draft202012Validator(root)
        return validator

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        for route in self._routes:
            if route.pattern.match(path):
                op = self.document["paths"][route.template].get(method.lower())
                return (route.template, op) if isinstance(op, dict) else None
        return None

    def check(
        self, method: str, path: str, status: int, headers: Mapping[str, str], body: bytes, text: str | None
    ) -> None:
        """Check one response; raises :class:`ContractViolation` naming the operation and the problem."""
        found = self.operation(method, path)
        if found is None:
            self.skipped[f"{method} {path.split('/')[1] if '/' in path else path}"] += 1
            return
        template, op = found
        name = f"{op['operationId']} ({method} {template}) answered {status}"
        responses = op["responses"]
        response = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX") or responses.get("default")
        if response is None:
            raise ContractViolation(f"{name}: status not documented (documented: {', '.join(responses)})")
        self._check_headers(name, response, headers)
        content = response.get("content")
        if not content:
            if body:
                raise ContractViolation(f"{name}: a body was sent where the document declares none: {body[:200]!r}")
            self._count(op)
            return
        media = _media(headers.get("content-type"))
        declared = {_media(key): value for key, value in content.items()}
        if media not in declared:
            raise ContractViolation(f"{name}: Content-Type {media!r} is not among {sorted(declared)}")
        schema = declared[media].get("schema")
        if schema is not None:
            for instance in _instances(media, body, text):
                errors = sorted(self._validator(schema).iter_errors(instance), key=lambda e: list(e.absolute_path))
                if errors:
                    shown = "; ".join(
                        f"at {'/'.join(map(str, e.absolute_path)) or '$'}: {e.message[:300]}" for e in errors[:5]
                    )
                    raise ContractViolation(f"{name}: the body does not match the document: {shown}")
        self._count(op)

    def _check_headers(self, name: str, response: dict[str, Any], headers: Mapping[str, str]) -> None:
        for header, spec in response.get("headers", {}).items():
            value = headers.get(header.lower())
            if value is None:
                if spec.get("required"):
                    raise ContractViolation(f"{name}: the required header {header} is missing")
                continue
            errors = list(self._validator(spec.get("schema", {})).iter_errors(value))
            if errors:
                raise ContractViolation(f"{name}: header {header}: {value!r}: {errors[0].message[:200]}")

    def _count(self, op: dict[str, Any]) -> None:
        self.validated += 1
        self.by_operation[op["operationId"]] += 1

    def summary(self) -> str:
        operations = self.operations()
        unexercised = [name for name in operations if not self.by_operation[name]]
        lines = [
            f"contract: {self.validated} responses validated against /api/openapi.json (JSON Schema 2020-12), "
            f"{len(operations) - len(unexercised)} of {len(operations)} operations exercised; "
            f"{sum(self.skipped.values())} responses of undocumented paths or methods not checked"
        ]
        if unexercised:
            lines.append(f"contract: operations no test called: {', '.join(unexercised)}")
        return "\n".join(lines)
