"""Exact decimal arithmetic and comparison as SQL functions on SQLite.

SQLite has no decimal type: ``Numeric(12, 2)`` columns are stored as REAL, so ``99.99 * 3`` is
``299.96999999999997`` there while PostgreSQL's ``numeric`` says ``299.97``. The query language
(``services.query``) compiles arithmetic to ``exact_arith(op, a, b)`` and comparisons of computed
values to ``exact_cmp(op, a, b)`` on SQLite; this module gives those two functions to every SQLite
connection (``models.db`` registers them on connect), computing with Python's ``Decimal``.

Values arrive as INTEGER, REAL (a money column: its shortest repr is the two-decimal value that
was stored) or TEXT (a literal, or another ``exact_arith`` result) and leave as TEXT. Anything
undefined — a NULL operand, division by zero, an overflow — is NULL, which no comparison matches:
the same answer PostgreSQL gives (the PostgreSQL spelling guards its divisions with ``NULLIF``).
A Python exception escaping a SQLite function would fail the whole statement, so none does.
"""

from __future__ import annotations

import decimal
import sqlite3
from collections.abc import Callable
from decimal import Decimal
from typing import Any

# More digits than PostgreSQL's numeric division keeps (at least 16 significant): results only
# differ, if at all, far beyond any literal a client writes.
_CONTEXT = decimal.Context(prec=34, Emax=999_999, Emin=-999_999, traps=[decimal.InvalidOperation, decimal.Overflow])
_ONE = Decimal(1)


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bytes):
        return None
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


def _truncated(value: Decimal) -> Decimal:
    return value.to_integral_value(rounding=decimal.ROUND_DOWN, context=_CONTEXT)


def _integral(rounding: str) -> Callable[[Decimal], Decimal]:
    def to_integer(value: Decimal) -> Decimal:
        # A value without a fractional part is its own result (quantize would need all its digits).
        if value.as_tuple().exponent >= 0:  # type: ignore[operator]
            return value
        return value.quantize(_ONE, rounding=rounding, context=_CONTEXT)

    return to_integer


_BINARY: dict[str, Callable[[Decimal, Decimal], Decimal | None]] = {
    "add": lambda a, b: _CONTEXT.add(a, b),
    "sub": lambda a, b: _CONTEXT.subtract(a, b),
    "mul": lambda a, b: _CONTEXT.multiply(a, b),
    "div": lambda a, b: None if b == 0 else _CONTEXT.divide(a, b),
    # Integer division truncates toward zero; the remainder has the dividend's sign (as in C,
    # PostgreSQL's trunc(a / b) and mod(a, b), and OData).
    "idiv": lambda a, b: None if b == 0 else _truncated(_CONTEXT.divide(a, b)),
    "mod": lambda a, b: None if b == 0 else _CONTEXT.remainder(a, b),
}
_UNARY: dict[str, Callable[[Decimal], Decimal]] = {
    "neg": lambda a: _CONTEXT.minus(a),
    # Midpoints away from zero, as PostgreSQL's round(numeric) and OData's round.
    "round": _integral(decimal.ROUND_HALF_UP),
    "floor": _integral(decimal.ROUND_FLOOR),
    "ceiling": _integral(decimal.ROUND_CEILING),
}
_COMPARISONS: dict[str, Callable[[Decimal, Decimal], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}


def exact_arith(op: str, left: Any, right: Any) -> str | None:
    """``left <op> right`` (``right`` is ignored by the unary operations), as decimal text."""
    try:
        a = _decimal(left)
        if a is None:
            return None
        if op in _UNARY:
            result = _UNARY[op](a)
        else:
            b = _decimal(right)
            if b is None:
                return None
            result = _BINARY[op](a, b)
        return None if result is None else str(result)
    except (ArithmeticError, ValueError, KeyError, TypeError):
        return None


def exact_cmp(op: str, left: Any, right: Any) -> int | None:
    """1 when ``left <op> right`` holds exactly, 0 when not, NULL when either side is undefined."""
    try:
        a, b = _decimal(left), _decimal(right)
        if a is None or b is None:
            return None
        return int(_COMPARISONS[op](a, b))
    except (ArithmeticError, ValueError, KeyError, TypeError):
        return None


def register(connection: sqlite3.Connection) -> None:
    """Give ``connection`` the two functions (deterministic: the same arguments, the same result)."""
    connection.create_function("exact_arith", 3, exact_arith, deterministic=True)
    connection.create_function("exact_cmp", 3, exact_cmp, deterministic=True)
