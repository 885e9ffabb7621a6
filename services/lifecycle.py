"""The order and item lifecycles: the one definition every status change goes through."""

from __future__ import annotations

PENDING_PAYMENT = "pending_payment"
PROCESSING = "processing"
SHIPPED = "shipped"
COMPLETED = "completed"
CANCELLED = "cancelled"
REFUNDED = "refunded"

ORDER_TRANSITIONS: dict[str, tuple[str, ...]] = {
    PENDING_PAYMENT: (PROCESSING, CANCELLED),
    PROCESSING: (SHIPPED, CANCELLED),
    SHIPPED: (COMPLETED,),
    COMPLETED: (REFUNDED,),
    CANCELLED: (),
    REFUNDED: (),
}

ITEM_PENDING, ITEM_VERIFIED, ITEM_FULFILLED, ITEM_CANCELLED = "pending", "verified", "fulfilled", "cancelled"

ITEM_TRANSITIONS: dict[str, tuple[str, ...]] = {
    ITEM_PENDING: (ITEM_VERIFIED, ITEM_CANCELLED),
    ITEM_VERIFIED: (ITEM_FULFILLED, ITEM_CANCELLED),
    ITEM_FULFILLED: (),
    ITEM_CANCELLED: (),
}

# Payment status of an order, as clients read it beside the order status.
PAYMENT_UNPAID = "unpaid"

# Payment statuses meaning "captured and not refunded": the orders whose totalAmount counts as
# revenue in the metrics. The payments work extends this (e.g. "captured", "partially_refunded").
PAYMENT_CAPTURED_STATUSES: tuple[str, ...] = ("completed",)
