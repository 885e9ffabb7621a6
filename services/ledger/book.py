"""The order's money book: its payment rows and what they add up to.

Pure reads and sums over ``payments`` rows, shared by the payment workflow, the lifecycle's side
effects and settlement. A duplicate capture (a second payment that landed on an order already
paid) and its refund cancel out, so they are left out of every sum.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Payment
from services.kernel.money import to_money

PROCESS, AUTHORIZE, CAPTURE, VOID, REFUND, CHECKOUT = "process", "authorize", "capture", "void", "refund", "checkout"
# Money received outside any gateway, recorded by staff (an order moved to ``processing`` by hand).
MANUAL = "manual"
ACTIONS = (PROCESS, AUTHORIZE, CAPTURE, VOID, REFUND)
# Actions whose success means money was captured for the order.
CAPTURING_ACTIONS = (PROCESS, CAPTURE, CHECKOUT, MANUAL)
# A capture that landed on an order already paid: refunded at once, and left out of the order's sums.
DUPLICATE_PAYMENT = "DUPLICATE_PAYMENT"

PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"
# Reconciliation stops asking about a payment after this many attempts (it then needs a person).
MAX_RECONCILE_ATTEMPTS = 10


def order_payments(session: Session, order_id: str) -> list[Payment]:
    """The payments that count for the order: a duplicate capture and its refund cancel out, so
    they are left out (otherwise a staff refund could give back the order's price twice)."""
    return counted(
        list(session.scalars(select(Payment).where(Payment.order_id == order_id).order_by(Payment.created_at)))
    )


def counted(rows: list[Payment]) -> list[Payment]:
    """``rows`` without duplicate captures and the refunds that gave them back."""
    duplicates = {p.id for p in rows if is_duplicate(p)}
    return [p for p in rows if p.id not in duplicates and p.parent_id not in duplicates]


def is_duplicate(payment: Payment) -> bool:
    return bool(payment.error) and payment.error.get("code") == DUPLICATE_PAYMENT


def total_of(payments: list[Payment], actions: tuple[str, ...], states: tuple[str, ...] = (SUCCEEDED,)) -> Decimal:
    return to_money(sum((p.amount for p in payments if p.action in actions and p.state in states), Decimal(0)))


def last_succeeded(payments: list[Payment], actions: tuple[str, ...]) -> Payment | None:
    matching = [
        p
        for p in payments
        if p.action in actions and p.state == SUCCEEDED and (p.gateway_transaction_id or p.action == MANUAL)
    ]
    return matching[-1] if matching else None


def has_attempt_in_flight(session: Session, order_id: str) -> bool:
    """A direct payment action (not a hosted checkout) whose outcome is not known yet."""
    return any(p.state == PENDING and p.action != CHECKOUT for p in order_payments(session, order_id))


def open_checkout_sessions(session: Session, order_id: str) -> list[Payment]:
    return list(
        session.scalars(
            select(Payment).where(
                Payment.order_id == order_id,
                Payment.action == CHECKOUT,
                Payment.state == PENDING,
                Payment.checkout_session_id.is_not(None),
            )
        )
    )
