"""What an export selects and in which order.

Two filter forms, which may be combined (they are ANDed):

* the brief's object: ``status``, ``startDate``, ``endDate`` (whole UTC days, both inclusive, on
  ``createdAt``), ``customerId``;
* an OData ``$filter`` string, the language of ``GET /api/orders``, compiled by
  ``services.query`` through :func:`compile_odata_filter`, the one adapter between the two.

``$orderby`` takes the API's field names, each ``asc`` or ``desc``; ties are broken by ``id``.
Without it an export is ordered by ``createdAt`` then ``id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, true

from models import Order
from services.exports.columns import EXPORT_COLUMNS
from services.kernel.errors import InvalidQuery
from services.orders.query.filter import compile_filter

MAX_EXPRESSION_LENGTH = 4000


@dataclass(frozen=True)
class ExportFilters:
    status: str | None = None
    start_date: date | None = None
    end_date: date | None = None
    customer_id: str | None = None
    odata_filter: str | None = None
    orderby: str | None = None

    def as_args(self) -> dict[str, Any]:
        """The JSON form stored in the job's args."""
        return {
            "status": self.status,
            "startDate": self.start_date.isoformat() if self.start_date else None,
            "endDate": self.end_date.isoformat() if self.end_date else None,
            "customerId": self.customer_id,
            "$filter": self.odata_filter,
            "$orderby": self.orderby,
        }

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> ExportFilters:
        return cls(
            status=args.get("status"),
            start_date=date.fromisoformat(args["startDate"]) if args.get("startDate") else None,
            end_date=date.fromisoformat(args["endDate"]) if args.get("endDate") else None,
            customer_id=args.get("customerId"),
            odata_filter=args.get("$filter"),
            orderby=args.get("$orderby"),
        )


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def compile_odata_filter(expression: str) -> ColumnElement[bool]:
    """An OData ``$filter`` string: the same language as ``GET /api/orders``."""
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise InvalidQuery(
            f"$filter is longer than {MAX_EXPRESSION_LENGTH} characters.",
            details=[{"field": "filters.$filter", "position": MAX_EXPRESSION_LENGTH}],
        )
    return compile_filter(expression)


def where_clause(filters: ExportFilters) -> ColumnElement[bool]:
    """One boolean expression over ``Order`` (values are bound parameters, never SQL text)."""
    conditions: list[ColumnElement[bool]] = []
    if filters.status is not None:
        conditions.append(Order.status == filters.status)
    if filters.customer_id is not None:
        conditions.append(Order.customer_id == filters.customer_id)
    if filters.start_date is not None:
        conditions.append(Order.created_at >= _day_start(filters.start_date))
    if filters.end_date is not None and filters.end_date < date.max:
        # The end of 9999-12-31 is the end of representable time: no upper bound at all (its
        # next midnight would overflow, which used to be a 500).
        conditions.append(Order.created_at < _day_start(filters.end_date + timedelta(days=1)))
    if filters.odata_filter:
        conditions.append(compile_odata_filter(filters.odata_filter))
    return and_(true(), *conditions)


def order_by_clauses(orderby: str | None) -> list[Any]:
    """``createdAt desc, status`` → SQL ORDER BY clauses, always ending with ``id``."""
    if not orderby or not orderby.strip():
        return [Order.created_at.asc(), Order.id.asc()]
    clauses: list[Any] = []
    named: set[str] = set()
    position = 0
    for term in orderby.split(","):
        parts = term.split()
        offset = position + (len(term) - len(term.lstrip()))
        if not parts or len(parts) > 2:
            raise InvalidQuery("Malformed $orderby term.", details=[{"field": "$orderby", "position": offset}])
        name = parts[0]
        direction = parts[1].lower() if len(parts) == 2 else "asc"
        if name not in EXPORT_COLUMNS:
            raise InvalidQuery(
                f"Unknown field {name!r} in $orderby.",
                details=[{"field": "$orderby", "position": offset, "allowed": list(EXPORT_COLUMNS)}],
            )
        if direction not in ("asc", "desc") or name in named:
            raise InvalidQuery(
                f"Bad $orderby term {term.strip()!r} (each field once, asc or desc).",
                details=[{"field": "$orderby", "position": offset}],
            )
        named.add(name)
        column = EXPORT_COLUMNS[name].column
        clauses.append(column.desc() if direction == "desc" else column.asc())
        position += len(term) + 1
    if "id" not in named:
        clauses.append(Order.id.asc())
    return clauses


def validate(filters: ExportFilters) -> None:
    """Raise now (at request time) what the task would otherwise fail on later."""
    where_clause(filters)
    order_by_clauses(filters.orderby)
