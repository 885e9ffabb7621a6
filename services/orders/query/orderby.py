"""``$orderby``: comma-separated API fields, each ``asc`` (default) or ``desc`` (any case); ``id`` breaks ties.

The tie-break makes every ordering total, which is what keyset paging (``services.query.paging``)
needs; it takes the direction of the last key so that ``createdAt desc`` is served by a backward
scan of the ``(created_at, id)`` index.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from services.kernel.errors import InvalidQuery
from services.orders.query.fields import FIELDS, FieldSpec

MAX_LENGTH = 500
MAX_KEYS = 5
DEFAULT_ORDERBY = "createdAt desc"

_ITEM = re.compile(r"\s*(?P<field>[A-Za-z_][A-Za-z0-9_]*)(?:\s+(?P<direction>[A-Za-z]+))?\s*$", re.ASCII)


@dataclass(frozen=True)
class SortKey:
    field: FieldSpec
    descending: bool

    @property
    def clause(self) -> Any:
        return self.field.column.desc() if self.descending else self.field.column.asc()

    def __str__(self) -> str:
        return f"{self.field.name} {'desc' if self.descending else 'asc'}"


@dataclass(frozen=True)
class OrderBy:
    """A total ordering: the requested keys, then ``id`` unless it was already among them."""

    keys: tuple[SortKey, ...]

    @property
    def clauses(self) -> list[Any]:
        """For ``select(...).order_by(*orderby.clauses)``."""
        return [key.clause for key in self.keys]

    def __str__(self) -> str:
        """The normalised form, e.g. ``createdAt desc,id desc``."""
        return ",".join(str(key) for key in self.keys)


def compile_orderby(expression: str | None, *, parameter: str = "$orderby", default: str = DEFAULT_ORDERBY) -> OrderBy:
    """Parse ``$orderby`` (``None`` or blank means ``default``) into a total :class:`OrderBy`.

    Raises :class:`services.errors.InvalidQuery` with the 0-based position of the bad item.
    """
    if expression is None or not expression.strip():
        expression = default
    if len(expression) > MAX_LENGTH:
        raise InvalidQuery.at(parameter, MAX_LENGTH, f"longer than {MAX_LENGTH} characters")
    keys: list[SortKey] = []
    seen: set[str] = set()
    position = 0
    for item in expression.split(","):
        match = _ITEM.match(item)
        if match is None:
            offset = len(item) - len(item.lstrip())
            raise InvalidQuery.at(parameter, position + offset, "expected '<field> [asc|desc]'")
        name, direction = match.group("field"), match.group("direction")
        spec = FIELDS.get(name)
        if spec is None:
            raise InvalidQuery.at(
                parameter, position + match.start("field"), f"unknown field {name!r}; fields are: {', '.join(FIELDS)}"
            )
        direction = direction.lower() if direction else None  # OData 4.01: keywords are case-insensitive
        if direction not in (None, "asc", "desc"):
            raise InvalidQuery.at(parameter, position + match.start("direction"), "expected 'asc' or 'desc'")
        if name in seen:
            raise InvalidQuery.at(parameter, position + match.start("field"), f"{name!r} is listed twice")
        seen.add(name)
        keys.append(SortKey(spec, direction == "desc"))
        if len(keys) > MAX_KEYS:
            raise InvalidQuery.at(parameter, position, f"at most {MAX_KEYS} sort keys")
        position += len(item) + 1
    if "id" not in seen:
        keys.append(SortKey(FIELDS["id"], keys[-1].descending))
    return OrderBy(tuple(keys))
