"""Exact money arithmetic: Decimals with two fraction digits, never floats."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

CENT = Decimal("0.01")
# Money columns are NUMERIC(12, 2): ten integer digits. A larger amount would be stored silently
# by SQLite and refused by PostgreSQL (numeric field overflow), so every amount the service
# writes, totals included, is checked against this first.
MAX_AMOUNT = Decimal("9999999999.99")


def to_money(value: Decimal | int | str) -> Decimal:
    """Quantize to cents (banker's rounding is never reached for validated inputs)."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_EVEN)
