"""Request and response bodies (pydantic v2): validation at the edge and the OpenAPI document.

Field names are the contract's camelCase. Money fields accept JSON numbers only (strings and
booleans are refused) and must have at most two fraction digits.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from services.exports.columns import DEFAULT_COLUMNS
from services.exports.filters import ExportFilters
from services.lifecycle import ORDER_TRANSITIONS
from services.money import MAX_AMOUNT

MAX_MONEY = MAX_AMOUNT
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


# Documented as what travels: a JSON number with at most two decimals (never a string).
MoneyIn = Annotated[
    Decimal,
    BeforeValidator(_json_number),
    Field(ge=0, le=MAX_MONEY, decimal_places=2),
    WithJsonSchema({"type": "number", "minimum": 0, "maximum": float(MAX_MONEY), "multipleOf": 0.01}),
]
MoneyOut = Annotated[Decimal, WithJsonSchema({"type": "number", "multipleOf": 0.01})]
Quantity = Annotated[int, BeforeValidator(_json_integer), Field(ge=1, le=10_000)]
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=ID_PATTERN)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrderItemIn(Strict):
    offerId: Identifier
    quantity: Quantity
    price: MoneyIn


class CreateOrderIn(Strict):
    """The order total (sum of quantity × price, computed by the server) is at most 9999999999.99;
    a larger one is 400 VALIDATION_ERROR on `items`."""

    customerId: Identifier
    items: list[OrderItemIn] = Field(min_length=1, max_length=100)
    paymentMethod: Literal[PAYMENT_METHODS]  # type: ignore[valid-type]
    paymentGatewayId: Identifier


PAYMENT_ACTIONS = ("process", "authorize", "capture", "void", "refund")


class PaymentDetailsIn(Strict):
    method: Literal[PAYMENT_METHODS]  # type: ignore[valid-type]
    token: str | None = Field(default=None, min_length=1, max_length=255)
    amount: MoneyIn | None = None


class PaymentIn(Strict):
    """The brief's payment body; ``token`` and ``amount`` are required for process and authorize."""

    orderId: Identifier
    action: Literal[PAYMENT_ACTIONS]  # type: ignore[valid-type]
    paymentDetails: PaymentDetailsIn | None = None


class PaymentResultOut(BaseModel):
    orderId: str
    paymentStatus: str
    transactionId: str


class AcceptedOut(BaseModel):
    taskId: str
    statusUrl: str


class WebhookAckOut(BaseModel):
    """The event was verified and stored. ``status``: ``applied``; ``duplicate`` (seen before);
    ``pending`` (its order or payment is not visible yet: applied when it is); ``ignored`` (a type
    the service does not act on); ``rejected`` (signed, but it does not match the payment it names:
    another gateway or order, or not the amount and currency owed; stored with the reason, nothing
    changed)."""

    received: bool
    eventId: str
    status: Literal["applied", "duplicate", "pending", "ignored", "rejected"]


class CheckoutPendingOut(BaseModel):
    orderId: str
    status: str


class CreateOrderOut(BaseModel):
    orderId: str
    status: str
    totalAmount: MoneyOut
    currency: str
    paymentUrl: str
    createdAt: str
    holdExpiresAt: str
    taskId: str


class OrderItemOut(BaseModel):
    id: str
    offerId: str
    quantity: int
    price: MoneyOut
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
    totalAmount: MoneyOut
    currency: str
    paymentStatus: str
    createdAt: str
    updatedAt: str
    version: int
    history: list[HistoryOut] | None = None


class StatusIn(Strict):
    status: str = Field(min_length=1, max_length=64)
    reason: str | None = Field(default=None, max_length=500)


class StatusOut(BaseModel):
    id: str
    status: str
    updatedAt: str
    version: int


class ItemActionIn(Strict):
    itemId: Identifier
    action: Literal["cancel", "verify"]
    reason: str | None = Field(default=None, max_length=500)


class ItemsIn(Strict):
    orderId: Identifier
    items: list[ItemActionIn] = Field(min_length=1, max_length=100)


class ItemStatusOut(BaseModel):
    itemId: str
    status: str


class ItemsOut(BaseModel):
    orderId: str
    items: list[ItemStatusOut]
    orderStatus: str
    totalAmount: Decimal
    version: int


class BulkCancelIn(Strict):
    # At most 10,000 ids: more is 413 PAYLOAD_TOO_LARGE (checked by the use case, not here).
    orderIds: list[Identifier] = Field(min_length=1)
    reason: str | None = Field(default=None, max_length=500)


class BulkCancelOut(BaseModel):
    """The task result (and the ``?dryRun=true`` answer, which adds ``dryRun: true``)."""

    cancelled: int
    failed: int
    results: list[dict[str, Any]]
    dryRun: bool | None = None


class LifecycleStateOut(BaseModel):
    status: str
    allowedTransitions: list[str]
    terminal: bool


class LifecycleOut(BaseModel):
    initial: str
    states: list[LifecycleStateOut]


class OrderStatesOut(BaseModel):
    order: LifecycleOut
    item: LifecycleOut
    itemActions: dict[str, str]


class OfferIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    price: MoneyIn
    stock: Annotated[int, BeforeValidator(_json_integer), Field(ge=0, le=1_000_000_000)]


class OfferOut(BaseModel):
    id: str
    name: str
    price: MoneyOut
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


def _calendar_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError("must be a calendar date, YYYY-MM-DD") from None


DateIn = Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$"), AfterValidator(_calendar_date)]
OrderStatusIn = Literal[tuple(ORDER_TRANSITIONS)]  # type: ignore[valid-type]
ODataText = Annotated[str, Field(min_length=1, max_length=4000)]


class ExportFiltersIn(Strict):
    """The brief's filter object; ``$filter`` (OData, the list's language) may be added to it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    status: OrderStatusIn | None = None
    startDate: DateIn | None = Field(None, description="first UTC day of createdAt, inclusive")
    endDate: DateIn | None = Field(None, description="last UTC day of createdAt, inclusive")
    customerId: Identifier | None = None
    odata_filter: ODataText | None = Field(None, alias="$filter")
    orderby: ODataText | None = Field(None, alias="$orderby")

    @model_validator(mode="after")
    def _dates_in_order(self) -> ExportFiltersIn:
        if self.startDate and self.endDate and self.startDate > self.endDate:  # type: ignore[operator]
            raise ValueError("startDate is after endDate")
        return self


class ExportIn(Strict):
    """``filters`` is the object above or an OData ``$filter`` string; ``columns`` default to all."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    format: Literal["csv", "xlsx", "excel"]
    filters: ExportFiltersIn | None = Field(None, description="the filter object, or an OData $filter string")
    columns: list[str] | None = Field(
        None, max_length=len(DEFAULT_COLUMNS), description="any of: " + ", ".join(DEFAULT_COLUMNS)
    )
    orderby: ODataText | None = Field(None, alias="$orderby", description="e.g. 'createdAt desc'; ties by id")

    @model_validator(mode="before")
    @classmethod
    def _filter_string(cls, data: Any) -> Any:
        """``"filters": "status eq 'completed'"`` is short for ``{"$filter": "status eq 'completed'"}``."""
        if isinstance(data, dict) and isinstance(data.get("filters"), str):
            return {**data, "filters": {"$filter": data["filters"]}}
        return data

    @model_validator(mode="after")
    def _one_orderby(self) -> ExportIn:
        if self.orderby and self.filters is not None and self.filters.orderby:
            raise ValueError("give $orderby once, either at the top level or inside filters")
        return self

    def export_filters(self) -> ExportFilters:
        if self.filters is None:
            return ExportFilters(orderby=self.orderby)
        f = self.filters
        return ExportFilters(
            status=f.status,
            start_date=f.startDate,  # type: ignore[arg-type]
            end_date=f.endDate,  # type: ignore[arg-type]
            customer_id=f.customerId,
            odata_filter=f.odata_filter,
            orderby=self.orderby or f.orderby,
        )


class TaskAcceptedOut(BaseModel):
    taskId: str
    statusUrl: str


class ExportLinkQuery(BaseModel):
    """The signed link's query string (``downloadUrl`` of a finished export task)."""

    expires: int = Field(description="Unix seconds after which the link answers 410")
    signature: str = Field(description="hex HMAC-SHA256 over the export id and expires")


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
    totalAmount: MoneyOut | None = None
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
    startDate: date = Field(description="First day of the range (inclusive), in `timezone`; 0001-01-02 to 9999-12-30.")
    endDate: date = Field(description="Last day of the range (inclusive), in `timezone`; 0001-01-02 to 9999-12-30.")
    groupBy: Literal["day", "week", "month", "status", "customer"] = "day"
    timezone: str = Field("UTC", max_length=64, description="IANA time zone name, e.g. America/New_York.")


class MetricsFigures(BaseModel):
    totalOrders: int
    totalRevenue: MoneyOut
    averageOrderValue: MoneyOut
    ordersByStatus: dict[str, int]


class MetricsGroupOut(MetricsFigures):
    key: str = Field(description="The bucket: YYYY-MM-DD (day; week's Monday; month's 1st), a status or a customerId.")


class MetricsOut(MetricsFigures):
    groupBy: str
    timezone: str
    groups: list[MetricsGroupOut]
    groupsTruncated: bool = Field(False, description="True when groupBy=customer had more than 1000 customers.")
    asOf: str


class ReconciliationQueryIn(Strict):
    date: DateIn | None = Field(None, description="Only the report of this UTC day (YYYY-MM-DD).")
    gatewayId: Identifier | None = Field(None, description="Only this gateway's reports.")


class SettlementEntryOut(BaseModel):
    id: str = Field(description="The gateway's id of the charge (kind capture) or refund.")
    kind: Literal["capture", "refund"]
    amount: MoneyOut


class AmountMismatchOut(BaseModel):
    id: str
    kind: Literal["capture", "refund"]
    gatewayAmount: MoneyOut
    dbAmount: MoneyOut


class ReconciliationReportOut(BaseModel):
    id: str
    date: str = Field(description="The UTC day settled (YYYY-MM-DD).")
    gatewayId: str
    matchedCount: int = Field(description="Entries on both sides with the same amount.")
    missingInGateway: list[SettlementEntryOut] = Field(
        description="Our successful payments the gateway has no record of."
    )
    missingInDb: list[SettlementEntryOut] = Field(description="Captures or refunds at the gateway no payment records.")
    amountMismatches: list[AmountMismatchOut]
    manualCount: int = Field(
        description="Payments staff recorded as received outside the gateway that day (an unpaid order moved to "
        "processing by hand): not compared with the gateway, which cannot know of them."
    )
    manualTotal: MoneyOut = Field(description="Their sum.")
    manualRefundCount: int = Field(description="Refunds of such payments, given back outside the gateway.")
    manualRefundTotal: MoneyOut = Field(description="Their sum.")
    createdAt: str = Field(description="When the report was (last) computed.")


class ReconciliationReportsOut(BaseModel):
    value: list[ReconciliationReportOut] = Field(description="Newest day first, then by gateway; at most 100.")
