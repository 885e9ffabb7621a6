"""The only names a query may use: API field name -> column and value kind.

Nothing outside these maps is reachable from a query (no column, relationship or attribute is
looked up by name), so a client can never address ``version``, ``checkout_url`` or any other
column by spelling it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import BigInteger, String

from models import Order, OrderItem
from models.types import Money, UTCDateTime

Kind = Literal["string", "money", "integer", "datetime"]


@dataclass(frozen=True)
class FieldSpec:
    """One queryable field: its API name, its column and the kind of literal it compares with."""

    name: str
    column: Any  # an InstrumentedAttribute (Order.status, ...)
    kind: Kind
    attribute: str  # the model attribute holding the value (for keyset tokens and rendering)


def _field(name: str, column: Any, kind: Kind) -> FieldSpec:
    return FieldSpec(name=name, column=column, kind=kind, attribute=column.key)


FIELDS: dict[str, FieldSpec] = {
    spec.name: spec
    for spec in (
        _field("id", Order.id, "string"),
        _field("customerId", Order.customer_id, "string"),
        _field("status", Order.status, "string"),
        _field("paymentStatus", Order.payment_status, "string"),
        _field("paymentMethod", Order.payment_method, "string"),
        _field("paymentGatewayId", Order.payment_gateway_id, "string"),
        _field("totalAmount", Order.total_amount, "money"),
        _field("currency", Order.currency, "string"),
        _field("itemCount", Order.item_count, "integer"),
        _field("createdAt", Order.created_at, "datetime"),
        _field("updatedAt", Order.updated_at, "datetime"),
    )
}

# Fields of an order item, reachable only inside ``items/any(i: i/...)`` and ``items/all(...)``.
ITEM_FIELDS: dict[str, FieldSpec] = {
    spec.name: spec
    for spec in (
        _field("id", OrderItem.id, "string"),
        _field("offerId", OrderItem.offer_id, "string"),
        _field("quantity", OrderItem.quantity, "integer"),
        _field("price", OrderItem.price, "money"),
        _field("status", OrderItem.status, "string"),
    )
}

# Collections a lambda may range over: name -> (item fields, correlation of an item to its order).
COLLECTIONS: dict[str, tuple[dict[str, FieldSpec], Any]] = {
    "items": (ITEM_FIELDS, OrderItem.order_id == Order.id),
}

# The SQL type a literal compared with a field of each kind is bound as.
SQL_TYPE_BY_KIND: dict[str, Any] = {
    "string": String(),
    "money": Money(),
    "integer": BigInteger(),
    "datetime": UTCDateTime(),
}
