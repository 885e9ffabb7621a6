"""The columns an export may name: the API's order field names, each bound to a column and a kind.

The kind decides how a value is written: ``text`` (neutralised against formula injection),
``money`` (two decimals; an xlsx number with the ``0.00`` format), ``integer``, ``datetime`` (ISO
8601 with ``Z`` in csv; a real date-time in xlsx, UTC).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models import Order
from services.kernel.errors import ValidationFailed

TEXT, MONEY, INTEGER, DATETIME = "text", "money", "integer", "datetime"


@dataclass(frozen=True)
class ExportColumn:
    name: str
    column: Any  # an InstrumentedAttribute of models.Order
    kind: str


EXPORT_COLUMNS: dict[str, ExportColumn] = {
    column.name: column
    for column in (
        ExportColumn("id", Order.id, TEXT),
        ExportColumn("customerId", Order.customer_id, TEXT),
        ExportColumn("status", Order.status, TEXT),
        ExportColumn("paymentStatus", Order.payment_status, TEXT),
        ExportColumn("paymentMethod", Order.payment_method, TEXT),
        ExportColumn("paymentGatewayId", Order.payment_gateway_id, TEXT),
        ExportColumn("totalAmount", Order.total_amount, MONEY),
        ExportColumn("currency", Order.currency, TEXT),
        ExportColumn("itemCount", Order.item_count, INTEGER),
        ExportColumn("createdAt", Order.created_at, DATETIME),
        ExportColumn("updatedAt", Order.updated_at, DATETIME),
    )
}

# Every field, in this order, when a request names no columns.
DEFAULT_COLUMNS: tuple[str, ...] = tuple(EXPORT_COLUMNS)


def resolve_columns(names: list[str] | None) -> list[ExportColumn]:
    """The requested columns in request order; unknown or repeated names are a 400."""
    if names is None:
        names = list(DEFAULT_COLUMNS)
    problems: list[dict[str, Any]] = []
    if not names:
        problems.append({"field": "columns", "message": "name at least one column"})
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name not in EXPORT_COLUMNS:
            problems.append(
                {"field": f"columns[{index}]", "message": f"unknown column {name!r}", "allowed": list(DEFAULT_COLUMNS)}
            )
        elif name in seen:
            problems.append({"field": f"columns[{index}]", "message": f"column {name!r} is named twice"})
        seen.add(name)
    if problems:
        raise ValidationFailed("The export names columns that do not exist.", details=problems)
    return [EXPORT_COLUMNS[name] for name in names]
