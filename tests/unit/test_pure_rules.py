"""The pure rules, on unsaved objects (no database): payment planning, item actions, ledger sums."""

from __future__ import annotations

from decimal import Decimal

import pytest

from models import Order, OrderItem, Payment
from services.changes.items import ItemAction, check_item_actions
from services.kernel.errors import InvalidTransition, ItemNotFound, ValidationFailed
from services.ledger.book import (
    CAPTURING_ACTIONS,
    DUPLICATE_PAYMENT,
    REFUND,
    counted,
    last_succeeded,
    total_of,
)
from services.payments.requests import PaymentRequest, plan_payment


def order(status: str = "pending_payment", payment_status: str = "unpaid", total: str = "20.00") -> Order:
    return Order(id="ord_1", status=status, payment_status=payment_status, total_amount=Decimal(total))


def payment(pid: str, action: str, amount: str, state: str = "succeeded", **extra: object) -> Payment:
    return Payment(
        id=pid, action=action, amount=Decimal(amount), state=state, gateway_transaction_id=f"gw_{pid}", **extra
    )


def request(action: str, amount: str | None = "20.00", token: str | None = "tok_visa") -> PaymentRequest:
    return PaymentRequest("ord_1", action, "credit_card", token, Decimal(amount) if amount else None)


# -- ledger sums ------------------------------------------------------------------------------------


def test_sums_count_only_succeeded_payments_of_the_actions_asked():
    rows = [
        payment("a", "process", "20.00"),
        payment("b", "refund", "5.00"),
        payment("c", "refund", "3.00", state="pending"),
        payment("d", "process", "20.00", state="failed"),
    ]
    assert total_of(rows, CAPTURING_ACTIONS) == Decimal("20.00")
    assert total_of(rows, (REFUND,)) == Decimal("5.00")
    assert total_of(rows, (REFUND,), ("succeeded", "pending")) == Decimal("8.00")
    assert last_succeeded(rows, CAPTURING_ACTIONS).id == "a"
    assert last_succeeded(rows, ("authorize",)) is None


def test_a_duplicate_capture_and_its_refund_cancel_out():
    rows = [
        payment("a", "checkout", "20.00"),
        payment("b", "process", "20.00", error={"code": DUPLICATE_PAYMENT}),
        payment("c", "refund", "20.00", parent_id="b"),
        payment("d", "refund", "5.00", parent_id="a"),
    ]
    kept = counted(rows)
    assert [p.id for p in kept] == ["a", "d"]
    assert total_of(kept, CAPTURING_ACTIONS) - total_of(kept, (REFUND,)) == Decimal("15.00")


def test_a_manual_payment_is_a_charge_without_a_gateway_transaction():
    manual = Payment(id="m", action="manual", amount=Decimal("20.00"), state="succeeded", gateway_transaction_id=None)
    assert last_succeeded([manual], CAPTURING_ACTIONS) is manual


# -- payment planning --------------------------------------------------------------------------------


def test_process_must_pay_exactly_what_is_outstanding():
    assert plan_payment(order(), [], request("process")) == (Decimal("20.00"), None)
    with pytest.raises(ValidationFailed):
        plan_payment(order(), [], request("process", amount="19.99"))
    with pytest.raises(ValidationFailed):
        plan_payment(order(), [], request("process", token=None))


def test_nothing_runs_beside_an_attempt_whose_outcome_is_unknown():
    with pytest.raises(InvalidTransition):
        plan_payment(order(), [payment("p", "process", "20.00", state="pending")], request("process"))


def test_a_paid_or_cancelled_order_takes_no_new_charge():
    with pytest.raises(InvalidTransition):
        plan_payment(order("processing", "completed"), [payment("a", "process", "20.00")], request("process"))
    with pytest.raises(InvalidTransition):
        plan_payment(order("pending_payment", "authorized"), [], request("authorize"))


def test_capture_needs_an_open_authorization_on_an_order_still_awaiting_payment():
    auth = payment("z", "authorize", "20.00")
    assert plan_payment(order("pending_payment", "authorized"), [auth], request("capture", None)) == (
        Decimal("20.00"),
        auth,
    )
    with pytest.raises(InvalidTransition):
        plan_payment(order("cancelled", "authorized"), [auth], request("capture", None))
    with pytest.raises(InvalidTransition):
        plan_payment(order("pending_payment", "unpaid"), [], request("capture", None))


def test_refunds_give_back_at_most_what_is_left():
    paid = [payment("a", "process", "20.00"), payment("b", "refund", "5.00", parent_id="a")]
    amount, charge = plan_payment(order("processing", "partially_refunded"), paid, request("refund", None))
    assert (amount, charge.id) == (Decimal("15.00"), "a")
    with pytest.raises(ValidationFailed):
        plan_payment(order("processing", "partially_refunded"), paid, request("refund", "15.01"))
    with pytest.raises(InvalidTransition):
        plan_payment(order("pending_payment", "unpaid"), [], request("refund", None))


# -- item actions ------------------------------------------------------------------------------------


def items(*statuses: str) -> dict[str, OrderItem]:
    return {f"item_{n}": OrderItem(id=f"item_{n}", status=status) for n, status in enumerate(statuses)}


def test_items_move_along_their_lifecycle_while_the_order_is_open():
    check_item_actions(
        order(), items("pending", "verified"), [ItemAction("item_0", "verify"), ItemAction("item_1", "cancel")]
    )
    check_item_actions(order("processing"), items("verified"), [ItemAction("item_0", "verify")])  # already there


def test_item_actions_refused_name_each_item():
    with pytest.raises(InvalidTransition) as refused:
        check_item_actions(
            order(), items("fulfilled", "cancelled"), [ItemAction("item_0", "cancel"), ItemAction("item_1", "verify")]
        )
    assert [d["itemId"] for d in refused.value.details] == ["item_0", "item_1"]
    with pytest.raises(InvalidTransition) as closed:
        check_item_actions(order("shipped", "completed"), items("pending"), [ItemAction("item_0", "cancel")])
    assert closed.value.details[0]["allowedTransitions"] == []
    with pytest.raises(ItemNotFound):
        check_item_actions(order(), items("pending"), [ItemAction("item_9", "cancel")])
    with pytest.raises(ValidationFailed):
        check_item_actions(order(), items("pending"), [ItemAction("item_0", "cancel"), ItemAction("item_0", "verify")])
