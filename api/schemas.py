"""Request and response bodies (pydantic v2): validation at the edge and the OpenAPI document.

Field names are the contract's camelCase. Money fields accept JSON numbers only (strings and
booleans are refused) and must have at most two fraction digits.

The response models say exactly what is sent, because clients are generated from them and
responses are validated against them (JSON Schema 2020-12): statuses are enumerations,
timestamps are ``date-time`` strings, a field that may be left out (``$select``, ``$expand``) is
optional but never ``null``, and money is a JSON number whose two-decimal rule is written as a
description and ``x-decimal-places``: ``multipleOf: 0.01`` cannot be used, since no binary float
is a multiple of 0.01 and validators reject 2499.99 by it.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    WithJsonSchema,
    model_validator,
)

from services.events.record import EVENT_TYPES
from services.exports.columns import DEFAULT_COLUMNS
from services.exports.filters import ExportFilters
from services.kernel import lifecycle
from services.kernel.lifecycle import ORDER_TRANSITIONS
from services.kernel.money import MAX_AMOUNT

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


# Documented as what travels: a JSON number with at most two decimals (never a string). The
# two-decimal rule is prose and an extension keyword, not ``multipleOf`` (see the module docstring).
MONEY_RULE = "An exact amount in the settlement currency: a JSON number with at most two decimal places."
MoneyIn = Annotated[
    Decimal,
    BeforeValidator(_json_number),
    Field(ge=0, le=MAX_MONEY, decimal_places=2),
    WithJsonSchema(
        {
            "type": "number",
            "minimum": 0,
            "maximum": float(MAX_MONEY),
            "description": MONEY_RULE + " More decimals are 400 VALIDATION_ERROR.",
            "x-decimal-places": 2,
            "examples": [99.99],
        }
    ),
]
MoneyOut = Annotated[
    Decimal, WithJsonSchema({"type": "number", "description": MONEY_RULE, "x-decimal-places": 2, "examples": [99.99]})
]
# What the API writes: UTC, to the second, with Z (a $filter literal of it matches at that precision).
Timestamp = Annotated[
    str,
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "description": "UTC, ISO 8601, to the second: 2026-06-02T10:30:00Z.",
            "examples": ["2026-06-02T10:30:00Z"],
        }
    ),
]
CalendarDate = Annotated[str, WithJsonSchema({"type": "string", "format": "date", "examples": ["2026-06-02"]})]

OrderStatus = Literal[tuple(ORDER_TRANSITIONS)]  # type: ignore[valid-type]
ItemStatus = Literal[tuple(lifecycle.ITEM_TRANSITIONS)]  # type: ignore[valid-type]
PAYMENT_STATUSES = (
    lifecycle.PAYMENT_UNPAID,
    lifecycle.PAYMENT_PENDING,
    lifecycle.PAYMENT_AUTHORIZED,
    lifecycle.PAYMENT_COMPLETED,
    lifecycle.PAYMENT_FAILED,
    lifecycle.PAYMENT_VOIDED,
    lifecycle.PAYMENT_PARTIALLY_REFUNDED,
    lifecycle.PAYMENT_REFUNDED,
)
PaymentStatus = Annotated[
    Literal[PAYMENT_STATUSES],  # type: ignore[valid-type]
    Field(
        description="The order's money: `completed` once the amount was captured, by the gateway or received "
        "outside it and recorded by staff (a `manual` payment)."
    ),
]


def _no_null_defaults(schema: dict[str, Any]) -> None:
    """Optional fields of a response are left out, never sent as null: pydantic writes ``X | None =
    None`` as "X or null, default null"; here it becomes "X, not required"."""
    required = set(schema.get("required", ()))
    for name, prop in schema.get("properties", {}).items():
        if name in required or prop.get("default", 0) is not None:
            continue
        del prop["default"]
        branches = [branch for branch in prop.get("anyOf", ()) if branch != {"type": "null"}]
        if len(branches) == 1 and len(prop["anyOf"]) == 2:
            del prop["anyOf"]
            prop.update({key: value for key, value in branches[0].items() if key not in prop})


class Omissible(BaseModel):
    """A response whose ``X | None = None`` fields are absent when not applicable (not nullable)."""

    model_config = ConfigDict(json_schema_extra=_no_null_defaults)


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
    """The brief's payment answer: the task result of ``POST /api/orders/payment``."""

    orderId: str
    paymentStatus: PaymentStatus
    transactionId: str = Field(description="This service's id of the payment attempt (txn_…).")


class AcceptedOut(BaseModel):
    """Queued: poll ``statusUrl`` (also in ``Location``) until the task finished."""

    taskId: str
    statusUrl: str = Field(description="/api/tasks/{taskId}")


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
    status: Literal["preparing_checkout"]


class CreateOrderOut(BaseModel):
    orderId: str
    status: OrderStatus
    totalAmount: MoneyOut
    currency: str
    paymentUrl: str = Field(description="Where a browser pays: redirects to the gateway's hosted checkout.")
    createdAt: Timestamp
    holdExpiresAt: Timestamp = Field(description="The stock is held, and the order payable, until then.")
    taskId: str = Field(description="The checkout task (type `checkout`).")


class OrderItemOut(BaseModel):
    id: str
    offerId: str
    quantity: int
    price: MoneyOut
    status: ItemStatus


class HistoryOut(BaseModel):
    fromStatus: OrderStatus | None
    toStatus: OrderStatus
    reason: str | None
    actor: str
    requestId: str | None
    version: int
    at: Timestamp


class OrderOut(Omissible):
    id: str
    customerId: str
    status: OrderStatus
    items: list[OrderItemOut]
    totalAmount: MoneyOut
    currency: str
    paymentStatus: PaymentStatus
    createdAt: Timestamp
    updatedAt: Timestamp
    version: int = Field(description="Increases with every change; the ETag is its quoted form.")
    history: list[HistoryOut] | None = Field(None, description="With `$expand=history` only.")


class StatusIn(Strict):
    status: str = Field(min_length=1, max_length=64)
    reason: str | None = Field(default=None, max_length=500)


class StatusOut(BaseModel):
    id: str
    status: OrderStatus
    updatedAt: Timestamp
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
    status: ItemStatus


class ItemsOut(BaseModel):
    orderId: str
    items: list[ItemStatusOut]
    orderStatus: OrderStatus
    totalAmount: MoneyOut
    version: int


class BulkCancelIn(Strict):
    # At most 10,000 ids: more is 413 PAYLOAD_TOO_LARGE (checked by the use case, not here).
    orderIds: list[Identifier] = Field(min_length=1)
    reason: str | None = Field(default=None, max_length=500)


class TaskErrorOut(BaseModel):
    """Why a task (or one order of a bulk cancel) failed: the error envelope's code, message, details."""

    code: str
    message: str
    details: list[Any]


class BulkCancelledOut(Omissible):
    orderId: str
    status: Literal["cancelled"]
    currentStatus: OrderStatus | None = Field(None, description="Dry run only: the status it would leave.")


class BulkCancelFailedOut(BaseModel):
    orderId: str
    error: TaskErrorOut = Field(description="ORDER_NOT_FOUND or INVALID_STATUS.")


class BulkCancelOut(Omissible):
    """The task result (and the ``?dryRun=true`` answer, which adds ``dryRun: true``)."""

    cancelled: int
    failed: int
    results: list[BulkCancelledOut | BulkCancelFailedOut] = Field(description="One per distinct id, in request order.")
    dryRun: bool | None = None


class LifecycleStateOut(BaseModel):
    status: OrderStatus | ItemStatus
    allowedTransitions: list[OrderStatus | ItemStatus]
    terminal: bool


class LifecycleOut(BaseModel):
    initial: OrderStatus | ItemStatus
    states: list[LifecycleStateOut]


class OrderStatesOut(BaseModel):
    order: LifecycleOut
    item: LifecycleOut
    itemActions: dict[str, ItemStatus]


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
    updatedAt: Timestamp


class Progress(BaseModel):
    current: int
    total: int
    percent: float


class CheckoutResultOut(BaseModel):
    orderId: str
    status: OrderStatus
    checkoutUrl: str | None = Field(description="The gateway's hosted page (where paymentUrl redirects).")


class CloseCheckoutResultOut(BaseModel):
    orderId: str
    closed: int = Field(description="Hosted checkout sessions closed unpaid.")
    paid: int = Field(description="Sessions the gateway reported paid meanwhile (then settled as payments).")


class CancelOrderResultOut(BaseModel):
    orderId: str
    status: Literal["cancelled"]


class ExportResultOut(BaseModel):
    """The file is at ``downloadUrl`` (signed, no API key needed) until ``expiresAt``."""

    exportId: str
    rows: int
    bytes: int
    sha256: str
    downloadUrl: str
    expiresAt: Timestamp


class WebhookResultOut(BaseModel):
    eventId: str
    state: str


class _TaskBase(BaseModel):
    taskId: str
    state: Literal["queued", "running", "succeeded", "failed"]
    progress: Progress
    error: TaskErrorOut | None = Field(description="Set when state is failed.")
    createdAt: Timestamp
    startedAt: Timestamp | None
    finishedAt: Timestamp | None


class CheckoutTaskOut(_TaskBase):
    """Opening the order's hosted checkout (queued by ``POST /api/orders``)."""

    type: Literal["checkout"]
    result: CheckoutResultOut | None = Field(description="Set when state is succeeded.")


class PaymentTaskOut(_TaskBase):
    type: Literal["payment"]
    result: PaymentResultOut | None = Field(description="Set when state is succeeded.")


class ExportTaskOut(_TaskBase):
    type: Literal["export"]
    result: ExportResultOut | None = Field(description="Set when state is succeeded.")


class BulkCancelTaskOut(_TaskBase):
    """``progress`` counts the orders finished; the result is set once all are."""

    type: Literal["bulk_cancel"]
    result: BulkCancelOut | None = Field(description="Set when state is succeeded.")


class CancelOrderTaskOut(_TaskBase):
    """One order of a bulk cancel."""

    type: Literal["cancel_order"]
    result: CancelOrderResultOut | None = Field(description="Set when state is succeeded.")


class CloseCheckoutTaskOut(_TaskBase):
    type: Literal["close_checkout"]
    result: CloseCheckoutResultOut | None = Field(description="Set when state is succeeded.")


class WebhookTaskOut(_TaskBase):
    type: Literal["webhook"]
    result: WebhookResultOut | None = Field(description="Set when state is succeeded.")


AnyTask = Annotated[
    CheckoutTaskOut
    | PaymentTaskOut
    | ExportTaskOut
    | BulkCancelTaskOut
    | CancelOrderTaskOut
    | CloseCheckoutTaskOut
    | WebhookTaskOut,
    Field(discriminator="type"),
]


class TaskOut(RootModel[AnyTask]):
    """A task: its ``type`` says which ``result`` it has."""


class KeyIn(Strict):
    role: Literal["admin", "ops", "customer"]
    customerId: Identifier | None = None


class KeyOut(BaseModel):
    id: str
    key: str = Field(description="The secret: shown in this response only.")
    role: Literal["admin", "ops", "customer"]
    customerId: str | None


class ErrorBody(BaseModel):
    code: str = Field(description="VALIDATION_ERROR, ORDER_NOT_FOUND, PAYMENT_FAILED, … (see the API's error table).")
    message: str
    details: list[Any]
    requestId: str | None


class ErrorOut(BaseModel):
    error: ErrorBody


class HealthOut(Omissible):
    status: Literal["ok", "ready", "unavailable"]
    checks: dict[str, bool] | None = Field(None, description="Readiness only: database and broker.")


def _calendar_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError("must be a calendar date, YYYY-MM-DD") from None


DateIn = Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$"), AfterValidator(_calendar_date)]
OrderStatusIn = OrderStatus
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


class ExportLinkQuery(BaseModel):
    """The signed link's query string (``downloadUrl`` of a finished export task)."""

    expires: int = Field(description="Unix seconds after which the link answers 410")
    signature: str = Field(description="hex HMAC-SHA256 over the export id and expires")


class ListOrdersQuery(BaseModel):
    """The OData query options of ``GET /api/orders`` (documented here; parsed by the service).

    As OData 4.01 reads them: names in any case, the ``$`` optional (``$FILTER``, ``top``); other
    parameters without ``$`` are custom options and ignored (``_=1700000000`` cache-busters)."""

    model_config = ConfigDict(populate_by_name=True, json_schema_extra=_no_null_defaults)

    filter: str | None = Field(
        None,
        alias="$filter",
        description=(
            "OData 4.01 filter. Operators (any case): eq ne gt ge lt le, and or not, in (...), add sub mul div "
            "divby mod and unary -, parentheses. Literals: 'strings' ('' escapes a quote), numbers of any precision "
            "with exponents (1.5e3), true, false, null, dates (2026-06-01: midnight UTC when compared with a "
            "timestamp) and datetimes (2026-06-01T10:30:00Z), which stand for the span of their last digit: "
            "createdAt eq 2026-06-01T10:30:00Z matches the whole second, so a timestamp the API returned finds its "
            "order; write .123 for the millisecond. Functions: contains startswith endswith indexof length "
            "substring trim concat tolower toupper (case-sensitive, 0-based), year month day hour minute second "
            "date now (UTC), round floor ceiling. Numbers compare exactly (totalAmount gt 1.234 means more than "
            "1.234); integer div truncates toward zero, mod takes the left side's sign, a division by a zero field "
            "matches nothing. Lambdas: items/any(i: i/offerId eq 'offer_456'), items/all(...). `has` is refused "
            "(no field is a flags enumeration). Fields: id customerId status paymentStatus paymentMethod "
            "paymentGatewayId totalAmount currency itemCount createdAt updatedAt; item fields: id offerId quantity "
            "price status. At most 2000 characters, 16 nesting levels, 12 nested functions or operators, "
            "100 conditions, 100 values per in-list."
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
    select: str | None = Field(
        None, alias="$select", description="Comma-separated fields to return; `items` among them adds the items."
    )
    expand: str | None = Field(
        None,
        alias="$expand",
        description="`items`: each entry's items (there by default; this keeps them with $select).",
    )
    skiptoken: str | None = Field(
        None, alias="$skiptoken", description="Opaque keyset cursor; only ever taken from nextLink."
    )


class OrderQuery(BaseModel):
    """The options of ``GET /api/orders/{id}``."""

    model_config = ConfigDict(populate_by_name=True, json_schema_extra=_no_null_defaults)

    expand: str | None = Field(
        None, alias="$expand", description="Comma-separated; `history` adds the status history (others are ignored)."
    )


class BulkCancelQuery(BaseModel):
    dryRun: bool = Field(False, description="Answer 200 at once with what would happen, changing nothing.")


class OrderSummaryOut(Omissible):
    """A list entry: every field and ``items`` unless ``$select`` names some (``items`` then only
    when named there or asked for with ``$expand=items``)."""

    id: str | None = None
    customerId: str | None = None
    status: OrderStatus | None = None
    paymentStatus: PaymentStatus | None = None
    paymentMethod: str | None = None
    paymentGatewayId: str | None = None
    totalAmount: MoneyOut | None = None
    currency: str | None = None
    itemCount: int | None = None
    createdAt: Timestamp | None = None
    updatedAt: Timestamp | None = None
    items: list[OrderItemOut] | None = None


class OrderListOut(Omissible):
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
    groupBy: Literal["day", "week", "month", "status", "customer"]
    timezone: str
    groups: list[MetricsGroupOut]
    groupsTruncated: bool = Field(description="True when groupBy=customer had more than 1000 customers.")
    asOf: Timestamp


class ReconciliationQueryIn(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_no_null_defaults)

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
    date: CalendarDate = Field(description="The UTC day settled (YYYY-MM-DD).")
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
    createdAt: Timestamp = Field(description="When the report was (last) computed.")


class ReconciliationReportsOut(BaseModel):
    value: list[ReconciliationReportOut] = Field(description="Newest day first, then by gateway; at most 100.")


# -- events and webhooks ------------------------------------------------------------------------------

EventType = Literal[tuple(EVENT_TYPES)]  # type: ignore[valid-type]
EVENT_DATA = (
    "What happened, by type: `order.created` the order as placed (orderId, customerId, status, totalAmount, "
    "currency, createdAt, items); `order.status_changed` and `order.cancelled` orderId, fromStatus, status, "
    "paymentStatus, reason, version, updatedAt; `order.payment_succeeded` and `order.payment_failed` orderId, "
    "transactionId, action, method, amount, currency, gatewayId, reason; `order.item_changed` orderId, items "
    "(itemId, status), reason, totalAmount, version; `export.ready` exportId, taskId, format, rows, bytes, sha256, "
    "expiresAt; `task.finished` taskId, type, state, orderId, errorCode."
)


class EventOut(Omissible):
    id: str = Field(description="`evt_…`: stable; the `Webhook-Id` of every delivery of this event.")
    type: EventType
    createdAt: Timestamp
    orderId: str | None = Field(None, description="The order the event is about, if any.")
    data: dict[str, Any] = Field(description=EVENT_DATA)


class EventListOut(Omissible):
    value: list[EventOut] = Field(description="In event order (the order of commits; per order, its changes' order).")
    nextLink: str | None = Field(None, description="The next page (`after` the last event); absent on the last page.")


class EventsQueryIn(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_no_null_defaults)

    after: Identifier | None = Field(None, description="An event id: only events after it (exclusive).")
    limit: int = Field(50, ge=1, le=500, description="Events per page (1-500, default 50).")
    type: EventType | None = Field(None, description="Only events of this type.")


WebhookUrl = Annotated[str, Field(min_length=1, max_length=2048, examples=["https://shop.example/hooks/orders"])]


class WebhookEndpointIn(Strict):
    url: WebhookUrl = Field(
        description="http(s) URL that receives a POST per event; its host must resolve to public addresses only "
        "(unless the deployment allows private ones); redirects are not followed."
    )
    eventTypes: list[EventType] = Field(min_length=1, max_length=len(EVENT_TYPES))
    description: str | None = Field(None, max_length=200)
    customerId: Identifier | None = Field(
        None, description="Staff: only this customer's events (default: every customer's). A customer key: its own."
    )


class WebhookEndpointOut(Omissible):
    id: str = Field(description="`we_…`")
    url: str
    eventTypes: list[EventType]
    description: str | None = None
    customerId: str | None = Field(None, description="Whose events it receives; absent: every customer's.")
    status: Literal["enabled", "failing"] = Field(
        description="`failing` once a delivery ran out of retries (about 24 h); a later success enables it again."
    )
    createdAt: Timestamp


class WebhookEndpointCreatedOut(WebhookEndpointOut):
    secret: str = Field(
        description="`whsec_…`: the Standard Webhooks signing secret, shown in this response only. Verify "
        "`webhook-signature` (`v1,<base64 HMAC-SHA256 of id.timestamp.body>`) with it."
    )


class WebhookEndpointListOut(BaseModel):
    value: list[WebhookEndpointOut]


class DeliveryErrorOut(BaseModel):
    code: Literal["TIMEOUT", "CONNECTION_ERROR", "HTTP_STATUS", "UNSAFE_ADDRESS", "ENDPOINT_DELETED"]
    message: str


class WebhookDeliveryOut(Omissible):
    id: str = Field(description="`whd_…`")
    endpointId: str
    eventId: str = Field(description="Also the `webhook-id` header of every attempt.")
    eventType: EventType
    orderId: str | None = None
    state: Literal["pending", "succeeded", "failed"]
    attempts: int
    nextAttemptAt: Timestamp | None = Field(None, description="While pending: when it is tried next.")
    lastAttemptAt: Timestamp | None = None
    lastStatusCode: int | None = Field(None, description="The receiver's last HTTP status.")
    lastError: DeliveryErrorOut | None = None
    lastDurationMs: int | None = None
    createdAt: Timestamp


class WebhookDeliveryListOut(Omissible):
    value: list[WebhookDeliveryOut] = Field(description="Oldest first.")
    nextLink: str | None = Field(None, description="The next page; absent on the last page.")


class DeliveriesQueryIn(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_no_null_defaults)

    after: Identifier | None = Field(None, description="A delivery id: only deliveries after it.")
    limit: int = Field(50, ge=1, le=500)
    state: Literal["pending", "succeeded", "failed"] | None = None
