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

INITIAL_ORDER_STATUS = PENDING_PAYMENT
INITIAL_ITEM_STATUS = ITEM_PENDING

# Stock of an order's items is *held* (reserved) while it awaits payment; from ``processing`` on
# the hold is committed (the goods are sold), so cancelling then puts the stock back on sale.
STOCK_HELD_STATUSES = frozenset({PENDING_PAYMENT})
# Order statuses in which items may still be verified or cancelled.
ITEMS_OPEN_STATUSES = frozenset({PENDING_PAYMENT, PROCESSING})
LIVE_ITEM_STATUSES = (ITEM_PENDING, ITEM_VERIFIED)

# Item actions of ``POST /api/orders/items`` and the status each leads to.
ITEM_ACTIONS: dict[str, str] = {"cancel": ITEM_CANCELLED, "verify": ITEM_VERIFIED}


def order_statuses() -> tuple[str, ...]:
    return tuple(ORDER_TRANSITIONS)


def allowed_order_transitions(status: str) -> tuple[str, ...]:
    return ORDER_TRANSITIONS.get(status, ())


def allowed_item_transitions(status: str) -> tuple[str, ...]:
    return ITEM_TRANSITIONS.get(status, ())


def order_transition_allowed(current: str, target: str) -> bool:
    return target in ORDER_TRANSITIONS.get(current, ())


def item_transition_allowed(current: str, target: str) -> bool:
    return target in ITEM_TRANSITIONS.get(current, ())


def money_captured(payment_status: str) -> bool:
    """Whether the order holds captured money (what a cancellation or refund gives back)."""
    return payment_status in PAYMENT_CAPTURED_STATUSES


def describe() -> dict[str, object]:
    """The lifecycle as data: what ``GET /api/meta/order-states`` serves."""

    def table(transitions: dict[str, tuple[str, ...]], initial: str) -> dict[str, object]:
        return {
            "initial": initial,
            "states": [
                {"status": status, "allowedTransitions": list(targets), "terminal": not targets}
                for status, targets in transitions.items()
            ],
        }

    return {
        "order": table(ORDER_TRANSITIONS, INITIAL_ORDER_STATUS),
        "item": table(ITEM_TRANSITIONS, INITIAL_ITEM_STATUS),
        "itemActions": dict(ITEM_ACTIONS),
    }
