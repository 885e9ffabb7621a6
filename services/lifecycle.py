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
PAYMENT_PENDING = "pending"  # a charge whose outcome is not known yet (left for reconciliation)
PAYMENT_AUTHORIZED = "authorized"
PAYMENT_COMPLETED = "completed"
PAYMENT_FAILED = "failed"
PAYMENT_VOIDED = "voided"
PAYMENT_PARTIALLY_REFUNDED = "partially_refunded"
PAYMENT_REFUNDED = "refunded"

# Payment statuses in which captured money is held for the order (what a refund can give back).
PAYMENT_CAPTURED_STATUSES: tuple[str, ...] = (PAYMENT_COMPLETED, PAYMENT_PARTIALLY_REFUNDED)
