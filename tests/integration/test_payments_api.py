"""``POST /api/orders/payment`` with a real worker and Redis, against the sandbox gateway."""

from __future__ import annotations

from sqlalchemy import func, select

from models import Job, SandboxLedgerEntry
from tests.conftest import auth, unique_customer
from tests.integration.helpers import (
    brief_payment,
    error_code,
    history_of,
    order_row,
    payments_of,
    place,
    sandbox_charges,
    wait_task,
)

WAIT = {"Prefer": "wait=20"}


def pay(client, headers, body, **extra):
    return client.simulate_post("/api/orders/payment", json=body, headers={**headers, **WAIT, **extra})


def test_brief_payment_example_completes_with_a_transaction_id(client, admin_headers, make_offer, deps, worker):
    offer = make_offer("99.99", stock=5)
    order = place(client, admin_headers, offer)
    result = pay(client, admin_headers, brief_payment(order["orderId"]))
    assert result.status_code == 200, result.text
    assert result.headers["preference-applied"] == "wait=20"
    body = result.json
    assert set(body) == {"orderId", "paymentStatus", "transactionId"}
    assert body["orderId"] == order["orderId"] and body["paymentStatus"] == "completed"
    assert body["transactionId"].startswith("txn_")

    current = client.simulate_get(f"/api/orders/{order['orderId']}", headers=admin_headers).json
    assert (current["status"], current["paymentStatus"], current["version"]) == ("processing", "completed", 2)
    assert history_of(deps.db, order["orderId"]) == [(None, "pending_payment"), ("pending_payment", "processing")]
    stock = client.simulate_get(f"/api/offers/{offer}", headers=admin_headers).json
    assert (stock["stockAvailable"], stock["stockReserved"]) == (4, 0)  # the held unit is sold
    [payment] = payments_of(deps.db, order["orderId"])
    assert (payment.id, payment.gateway_id, payment.action, payment.state) == (
        body["transactionId"],
        "stripe_1",
        "process",
        "succeeded",
    )
    assert payment.amount == order_row(deps.db, order["orderId"]).total_amount
    assert payment.idempotency_key == f"{payment.id}:process"
    [charge] = sandbox_charges(deps.db, order["orderId"])
    assert payment.gateway_transaction_id == charge.id and charge.idempotency_key == payment.idempotency_key


def test_transient_gateway_errors_retry_with_backoff_and_charge_once(client, admin_headers, make_offer, deps, worker):
    order = place(client, admin_headers, make_offer("99.99", stock=5))
    body = brief_payment(order["orderId"])
    body["paymentDetails"]["token"] = "tok_gatewayFlaky"  # unavailable twice, then it answers
    result = pay(client, admin_headers, body, Prefer="wait=25")
    assert result.status_code == 200, result.text
    assert result.json["paymentStatus"] == "completed"
    [payment] = payments_of(deps.db, order["orderId"])
    with deps.db.reader() as session:
        job = session.get(Job, payment.job_id)
        outages = session.scalar(
            select(func.count())
            .select_from(SandboxLedgerEntry)
            .where(
                SandboxLedgerEntry.kind == "outage",
                SandboxLedgerEntry.idempotency_key.startswith(payment.idempotency_key),
            )
        )
    assert job.attempts == 3 and outages == 2  # two retries, after 1 s and 2 s of backoff
    assert (job.finished_at - job.started_at).total_seconds() >= 3
    assert len(sandbox_charges(deps.db, order["orderId"])) == 1


def test_without_prefer_the_answer_is_202_and_a_task(client, admin_headers, make_offer, worker):
    order = place(client, admin_headers, make_offer())
    result = client.simulate_post("/api/orders/payment", json=brief_payment(order["orderId"]), headers=admin_headers)
    assert result.status_code == 202, result.text
    task_id = result.json["taskId"]
    assert result.json["statusUrl"] == f"/api/tasks/{task_id}" == result.headers["location"]
    task = wait_task(client, task_id, admin_headers)
    assert task["type"] == "payment" and task["state"] == "succeeded"
    assert task["result"]["paymentStatus"] == "completed" and task["result"]["orderId"] == order["orderId"]


def test_declines_are_402_payment_failed_with_the_reason(client, admin_headers, make_offer, deps, worker):
    order = place(client, admin_headers, make_offer())
    declined = pay(client, admin_headers, brief_payment(order["orderId"], token="tok_chargeDeclined"))
    assert declined.status_code == 402 and error_code(declined) == "PAYMENT_FAILED", declined.text
    assert declined.json["error"]["details"][0]["reason"] == "card_declined"
    assert declined.headers["preference-applied"] == "wait=20"
    current = order_row(deps.db, order["orderId"])
    assert (current.status, current.payment_status) == ("pending_payment", "failed")

    poor = pay(client, admin_headers, brief_payment(order["orderId"], token="tok_insufficientFunds"))
    assert poor.status_code == 402 and poor.json["error"]["details"][0]["reason"] == "insufficient_funds"
    # The task itself failed with that error (declines are never retried).
    with deps.db.reader() as session:
        jobs = session.scalars(select(Job).where(Job.order_id == order["orderId"], Job.type == "payment")).all()
        assert sorted((j.state, j.attempts) for j in jobs) == [("failed", 1), ("failed", 1)]

    paid = pay(client, admin_headers, brief_payment(order["orderId"]))
    assert paid.status_code == 200 and paid.json["paymentStatus"] == "completed"
    assert [p.state for p in payments_of(deps.db, order["orderId"])] == ["failed", "failed", "succeeded"]
    assert len(sandbox_charges(deps.db, order["orderId"])) == 1


def test_one_idempotency_key_charges_once(client, admin_headers, make_offer, deps, worker):
    order = place(client, admin_headers, make_offer())
    headers = {"Idempotency-Key": "pay-" + unique_customer()}
    first = pay(client, admin_headers, brief_payment(order["orderId"]), **headers)
    second = pay(client, admin_headers, brief_payment(order["orderId"]), **headers)
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert second.headers.get("idempotent-replayed") == "true"
    assert first.json == second.json
    assert len(sandbox_charges(deps.db, order["orderId"])) == 1
    assert len(payments_of(deps.db, order["orderId"])) == 1
    # Without the key, a second charge of a paid order is refused (and reaches no gateway).
    again = pay(client, admin_headers, brief_payment(order["orderId"]))
    assert again.status_code == 400 and error_code(again) == "INVALID_STATUS"
    with deps.db.reader() as session:
        count = (
            select(func.count()).select_from(SandboxLedgerEntry).where(SandboxLedgerEntry.reference == order["orderId"])
        )
        assert session.scalar(count.where(SandboxLedgerEntry.kind == "charge")) == 1


def test_amount_must_match_the_outstanding_amount(client, admin_headers, make_offer, deps):
    order = place(client, admin_headers, make_offer("10.00"), price=10.00, quantity=2)
    result = pay(client, admin_headers, brief_payment(order["orderId"], amount=10.00))
    assert result.status_code == 400 and error_code(result) == "VALIDATION_ERROR"
    assert result.json["error"]["details"][0]["field"] == "paymentDetails.amount"
    assert result.json["error"]["details"][0]["expected"] == 20.00
    missing = pay(client, admin_headers, {"orderId": order["orderId"], "action": "process"})
    assert missing.status_code == 400 and {d["field"] for d in missing.json["error"]["details"]} == {
        "paymentDetails.token",
        "paymentDetails.amount",
    }
    assert payments_of(deps.db, order["orderId"]) == []


def test_unknown_order_and_another_customers_order_are_404(client, admin_headers, make_offer, make_key):
    assert error_code(pay(client, admin_headers, brief_payment("ord_missing"))) == "ORDER_NOT_FOUND"
    alice, bob = unique_customer(), unique_customer()
    order = place(client, auth(make_key("customer", alice)), make_offer(), customer_id=alice)
    other = pay(client, auth(make_key("customer", bob)), brief_payment(order["orderId"]))
    assert other.status_code == 404 and error_code(other) == "ORDER_NOT_FOUND"


def test_a_timeout_leaves_the_charge_pending_for_reconciliation(client, admin_headers, make_offer, deps, worker):
    order = place(client, admin_headers, make_offer())
    result = pay(client, admin_headers, brief_payment(order["orderId"], token="tok_timeout"))
    assert result.status_code == 200 and result.json["paymentStatus"] == "pending", result.text
    [payment] = payments_of(deps.db, order["orderId"])
    assert payment.state == "pending" and payment.error["code"] == "GATEWAY_TIMEOUT"
    current = order_row(deps.db, order["orderId"])
    assert (current.status, current.payment_status) == ("pending_payment", "pending")
    # While the outcome is unknown no second charge may start.
    again = pay(client, admin_headers, brief_payment(order["orderId"]))
    assert again.status_code == 400 and error_code(again) == "INVALID_STATUS"
    assert again.json["error"]["details"][0]["pending"] == [payment.id]


def test_authorize_capture_and_partial_then_full_refund(client, admin_headers, make_offer, deps, worker):
    offer = make_offer("50.00", stock=3)
    order = place(client, admin_headers, offer, price=50.00, quantity=2)
    oid = order["orderId"]
    authorized = pay(client, admin_headers, brief_payment(oid, amount=100.00, action="authorize"))
    assert authorized.status_code == 200 and authorized.json["paymentStatus"] == "authorized", authorized.text
    assert order_row(deps.db, oid).status == "pending_payment"
    captured = pay(client, admin_headers, {"orderId": oid, "action": "capture"})
    assert captured.status_code == 200 and captured.json["paymentStatus"] == "completed", captured.text
    assert order_row(deps.db, oid).status == "processing"
    stock = client.simulate_get(f"/api/offers/{offer}", headers=admin_headers).json
    assert (stock["stockAvailable"], stock["stockReserved"]) == (1, 0)

    details = {"method": "credit_card", "amount": 30.00}
    partial = pay(client, admin_headers, {"orderId": oid, "action": "refund", "paymentDetails": details})
    assert partial.status_code == 200 and partial.json["paymentStatus"] == "partially_refunded", partial.text
    too_much = pay(
        client, admin_headers, {"orderId": oid, "action": "refund", "paymentDetails": {**details, "amount": 70.01}}
    )
    assert too_much.status_code == 400 and too_much.json["error"]["details"][0]["refundable"] == 70.00
    rest = pay(client, admin_headers, {"orderId": oid, "action": "refund"})
    assert rest.status_code == 200 and rest.json["paymentStatus"] == "refunded", rest.text
    actions = [(p.action, p.state, p.amount) for p in payments_of(deps.db, oid)]
    assert [(a, s, str(m)) for a, s, m in actions] == [
        ("authorize", "succeeded", "100.00"),
        ("capture", "succeeded", "100.00"),
        ("refund", "succeeded", "30.00"),
        ("refund", "succeeded", "70.00"),
    ]
    with deps.db.reader() as session:
        refunds = session.scalars(
            select(SandboxLedgerEntry.amount).where(
                SandboxLedgerEntry.kind == "refund",
                SandboxLedgerEntry.parent_id == payments_of(deps.db, oid)[0].gateway_transaction_id,
            )
        ).all()
    assert sorted(str(a) for a in refunds) == ["30.00", "70.00"]


def test_authorize_then_void(client, admin_headers, make_offer, deps, worker):
    order = place(client, admin_headers, make_offer())
    oid = order["orderId"]
    assert pay(client, admin_headers, brief_payment(oid, action="authorize")).json["paymentStatus"] == "authorized"
    voided = pay(client, admin_headers, {"orderId": oid, "action": "void"})
    assert voided.status_code == 200 and voided.json["paymentStatus"] == "voided", voided.text
    assert order_row(deps.db, oid).status == "pending_payment"
    nothing = pay(client, admin_headers, {"orderId": oid, "action": "capture"})
    assert nothing.status_code == 400 and error_code(nothing) == "INVALID_STATUS"
