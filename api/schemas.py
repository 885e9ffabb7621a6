"""Request and response bodies (pydantic v2): validation at the edge and the OpenAPI document.

Field names are the contract's camelCase. Money fields accept JSON numbers only (strings and
booleans are refused) and must have at most two fraction digits.
"""

from __future__ import annotations

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
    received: bool
    eventId: str
    status: str


class CheckoutPendingOut(BaseModel):
    orderId: str
    status: str


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
