"""How deeply a parsed JSON value nests, measured without recursion.

Request bodies and webhook payloads are client text: ``[[[[...]]]]`` 5,000 levels deep is a
few kilobytes. Python's ``json`` parser gives up near its recursion limit (a ``RecursionError``,
not a ``ValueError``), and a value just under that limit still breaks every recursive walk after
it (encoders, validators, our own checks). No contract body nests more than a few levels, so
anything deeper than :data:`MAX_JSON_DEPTH` is refused right after parsing.
"""

from __future__ import annotations

from typing import Any

# Our request bodies nest 3 levels; Stripe events about 10.
MAX_JSON_DEPTH = 32


def nests_deeper_than(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``value`` has objects/arrays more than ``limit`` levels deep (the top one is level 1)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False
