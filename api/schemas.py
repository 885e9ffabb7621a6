"""Request and response bodies (pydantic v2): validation at the edge and the OpenAPI document.

Field names are the contract's camelCase. Money fields accept JSON numbers only (strings and
booleans are refused) and must have at most two fraction digits.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

MAX_MONEY = Decimal("9999999999.99")
ID_PATTERN = r"^[A-Za-z0-9_.:\-]+$"
PAYMENT_METHODS = ("credit_card", "debit_card", "bank_transfer", "paypal", "apple_pay", "google_pay")


def _json_number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | float):
        raise ValueError("must be a JSON number")
    return value


def _json_integer(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be a JSON integer")
    return value


MoneyIn = Annotated[Decimal, BeforeValidator(_json_number), Field(ge=0, le=MAX_MONEY, decimal_places=2)]
Quantity = Annotated[int, BeforeValidator(_json_integer), Field(ge=1, le=10_000)]
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=ID_PATTERN)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrderItemIn(Strict):
    offerId: Identifier
    quantity: Quantity
    price: MoneyIn


class CreateOrderIn(Strict):
    customerId: Identifier
    items: list[OrderItemIn] = Field(min_length=1, max_length=100)
    paymentMethod: Literal[PAYMENT_METHODS]  # type: ignore[valid-type]
    paymentGatewayId: Identifier


class CreateOrderOut(BaseModel):
    orderId: str
    status: str
    totalAmount: Decimal
    currency: str
    paymentUrl: str
    createdAt: str
    holdExpiresAt: str
    taskId: str


class OrderItemOut(BaseModel):
    id: str
    offerId: str
    quantity: int
    price: Decimal
    status: str


class HistoryOut(BaseModel):
    fromStatus: str | None
    toStatus: str
    reason: str | None
    actor: str
    requestId: str | None
    version: int
    at: str


class OrderOut(BaseModel):
    id: str
    customerId: str
    status: str
    items: list[OrderItemOut]
    totalAmount: Decimal
    currency: str
    paymentStatus: str
    createdAt: str
    updatedAt: str
    version: int
    history: list[HistoryOut] | None = None


class OfferIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    price: MoneyIn
    stock: Annotated[int, BeforeValidator(_json_integer), Field(ge=0, le=1_000_000_000)]


class OfferOut(BaseModel):
    id: str
    name: str
    price: Decimal
    currency: str
    stockAvailable: int
    stockReserved: int
    updatedAt: str


class Progress(BaseModel):
    current: int
    total: int
    percent: float


class TaskOut(BaseModel):
    taskId: str
    type: str
    state: Literal["queued", "running", "succeeded", "failed"]
    progress: Progress
    result: Any = None
    error: Any = None
    createdAt: str
    startedAt: str | None
    finishedAt: str | None


class KeyIn(Strict):
    role: Literal["admin", "ops", "customer"]
    customerId: Identifier | None = None


class KeyOut(BaseModel):
    id: str
    key: str
    role: str
    customerId: str | None


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[Any]
    requestId: str | None


class ErrorOut(BaseModel):
    error: ErrorBody


class HealthOut(BaseModel):
    status: str
    checks: dict[str, bool] | None = None


class ListOrdersQuery(BaseModel):
    """The OData query options of ``GET /api/orders`` (documented here; parsed by the service)."""

    model_config = ConfigDict(populate_by_name=True)

    filter: str | None = Field(
        None,
        alias="$filter",
        description=(
            "OData filter: eq ne gt ge lt le, and or not, parentheses, in (...), contains, startswith, endswith, "
            "tolower, toupper, year/month/day (UTC), null, 'strings' ('' escapes a quote), numbers, dates "
            "(2026-06-01, midnight UTC), datetimes (2026-06-01T00:00:00Z), items/any(i: i/offerId eq 'offer_456') "
            "and items/all(...). Fields: id customerId status paymentStatus paymentMethod paymentGatewayId "
            "totalAmount currency itemCount createdAt updatedAt; item fields: id offerId quantity price status. "
            "At most 2000 characters, 16 nesting levels, 100 conditions, 100 values per in-list."
        ),
    )
    orderby: str | None = Field(
        None,
        alias="$orderby",
        description="Comma-separated fields, each asc (default) or desc; default createdAt desc; id breaks ties.",
    )
    top: int | None = Field(None, alias="$top", ge=0, le=1000, description="Page size, default 50, at most 1000.")
    skip: int | None = Field(None, alias="$skip", ge=0, le=100_000, description="Rows to skip (prefer nextLink).")
    count: bool | None = Field(None, alias="$count", description="Whether to return count (default true).")
    select: str | None = Field(None, alias="$select", description="Comma-separated fields to return.")
    expand: str | None = Field(None, alias="$expand", description="'items' adds each order's items.")
    skiptoken: str | None = Field(
        None, alias="$skiptoken", description="Opaque keyset cursor; only ever taken from nextLink."
    )


class OrderSummaryOut(BaseModel):
    """A list entry: every field unless ``$select`` names some; ``items`` only with ``$expand=items``."""

    id: str | None = None
    customerId: str | None = None
    status: str | None = None
    paymentStatus: str | None = None
    paymentMethod: str | None = None
    paymentGatewayId: str | None = None
    totalAmount: Decimal | None = None
    currency: str | None = None
    itemCount: int | None = None
    createdAt: str | None = None
    updatedAt: str | None = None
    items: list[OrderItemOut] | None = None


class OrderListOut(BaseModel):
    value: list[OrderSummaryOut]
    count: int | None = Field(None, description="Rows matching $filter (all pages); omitted with $count=false.")
    nextLink: str | None = Field(None, description="The next page (keyset $skiptoken); absent on the last page.")


class MetricsQueryIn(Strict):
    startDate: date = Field(description="First day of the range (inclusive), in `timezone`.")
    endDate: date = Field(description="Last day of the range (inclusive), in `timezone`.")
    groupBy: Literal["day", "week", "month", "status", "customer"] = "day"
    timezone: str = Field("UTC", max_length=64, description="IANA time zone name, e.g. America/New_York.")


class MetricsFigures(BaseModel):
    totalOrders: int
    totalRevenue: Decimal
    averageOrderValue: Decimal
    ordersByStatus: dict[str, int]


class MetricsGroupOut(MetricsFigures):
    key: str = Field(description="The bucket: YYYY-MM-DD (day; week's Monday; month's 1st), a status or a customerId.")


class MetricsOut(MetricsFigures):
    groupBy: str
    timezone: str
    groups: list[MetricsGroupOut]
    groupsTruncated: bool = Field(False, description="True when groupBy=customer had more than 1000 customers.")
    asOf: str
