"""Exact money arithmetic: Decimals with two fraction digits, never floats."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

CENT = Decimal("0.01")


def to_money(value: Decimal | int | str) -> Decimal:
    """Quantize to cents (banker's rounding is never reached for validated inputs)."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_EVEN)


def has_at_most_two_decimals(value: Decimal) -> bool:
    return value == value.quantize(CENT)
