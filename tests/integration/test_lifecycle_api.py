"""Status changes, the lifecycle endpoint and item actions, through the API on a real database."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from falcon import testing
from sqlalchemy import select

from models import Job, Order, Payment, SandboxLedgerEntry, StatusHistory
from services.jobs.kinds import PAYMENT
from services.jobs.outbox import JobRef
from services.kernel import lifecycle
from services.kernel.principal import SYSTEM
from services.payments.execution import _call_gateway, _finish_success, _start
from services.payments.requests import PaymentRequest, request_payment
from tests.conftest import auth, unique_customer
from tests.integration.helpers import brief_order, error_code
from tests.support.polling import wait_for

PATH_TO = {
    "pending_payment": [],
    "processing": ["processing"],
    "shipped": ["processing", "shipped"],
    "completed": ["processing", "shipped", "completed"],
    "cancelled": ["cancelled"],
    "refunded": ["processing", "shipped", "completed", "refunded"],
}
ALLOWED = [(source, target) for source, targets in lifecycle.ORDER_TRANSITIONS.items() for target in targets]
FORBIDDEN = [
    ("pending_payment", "shipped"),
    ("pending_payment", "completed"),
    ("pending_payment", "refunded"),
    ("pending_payment", "pending_payment"),
    ("processing", "completed"),
    ("processing", "pending_payment"),
    ("shipped", "cancelled"),
    ("shipped", "processing"),
    ("completed", "cancelled"),
    ("completed", "shipped"),
    ("cancelled", "processing"),
    ("cancelled", "cancelled"),
    ("refunded", "completed"),
    ("pending_payment", "on_hold"),
    ("processing", "PROCESSING"),
]


def place(client, headers, offer, customer=None, quantity=1, price=99.99) -> str:
    result = client.simulate_post(
        "/api/orders",
        json=brief_order(offer, customer or unique_customer(), quantity=quantity, price=price),
        headers=headers,
    )
    assert result.status_code == 201, result.text
    return result.json["orderId"]


def patch_status(client, headers, order_id, status, reason="test", **extra_headers) -> testing.Result:
    return client.simulate_patch(
        f"/api/orders/{order_id}/status",
        json={"status": status, "reason": reason},
        headers={**headers, **extra_headers},
    )


def walk(client, headers, order_id, status) -> None:
    for step in PATH_TO[status]:
        result = patch_status(client, headers, order_id, step, reason=f"to {step}")
        assert result.status_code == 200, result.text


def stock(client, headers, offer) -> tuple[int, int]:
    body = client.simulate_get(f"/api/offers/{offer}", headers=headers).json
    return body["stockAvailable"], body["stockReserved"]


def history(client, headers, order_id) -> list[dict]:
    return client.simulate_get(f"/api/orders/{order_id}", params={"$expand": "history"}, headers=headers).json[
        "history"
    ]


def test_order_states_are_served_publicly(client):
    result = client.simulate_get("/api/meta/order-states")
    assert result.status_code == 200
    body = result.json
    assert body == lifecycle.describe()
    states = {s["status"]: s["allowedTransitions"] for s in body["order"]["states"]}
    assert states == {status: list(targets) for status, targets in lifecycle.ORDER_TRANSITIONS.items()}


@pytest.mark.parametrize(("source", "target"), ALLOWED)
def test_every_allowed_transition(client, admin_headers, make_offer, source, target):
    offer = make_offer("10.00", stock=10)
    order_id = place(client, admin_headers, offer, quantity=2, price=10.00)
    walk(client, admin_headers, order_id, source)
    before = client.simulate_get(f"/api/orders/{order_id}", headers=admin_headers).json

    result = patch_status(
        client, admin_headers, order_id, target, reason="Payment confirmed", **{"X-Request-Id": "r-1"}
    )
    assert result.status_code == 200, result.text
    body = result.json
    assert (body["id"], body["status"], body["version"]) == (order_id, target, before["version"] + 1)
    assert body["updatedAt"].endswith("Z") and result.headers["etag"] == f'"{body["version"]}"'

    last = history(client, admin_headers, order_id)[-1]
    assert (last["fromStatus"], last["toStatus"], last["reason"]) == (source, target, "Payment confirmed")
    assert last["actor"].startswith("admin:") and last["requestId"] == "r-1" and last["version"] == body["version"]

    order = client.simulate_get(f"/api/orders/{order_id}", headers=admin_headers).json
    item_status = order["items"][0]["status"]
    # Side effects: stock held while awaiting payment, committed from processing, back on cancel.
    expected_stock = {
        "processing": (8, 0),
        "shipped": (8, 0),
        "completed": (8, 0),
        "refunded": (8, 0),
        "cancelled": (10, 0),
    }[target]
    assert stock(client, admin_headers, offer) == expected_stock
    assert item_status == {"cancelled": "cancelled", "completed": "fulfilled", "refunded": "fulfilled"}.get(
        target, "pending"
    )


@pytest.mark.parametrize(("source", "target"), FORBIDDEN)
def test_forbidden_transitions_are_invalid_status_and_change_nothing(client, admin_headers, make_offer, source, target):
    order_id = place(client, admin_headers, make_offer())
    walk(client, admin_headers, order_id, source)
    before = client.simulate_get(f"/api/orders/{order_id}", headers=admin_headers).json

    result = patch_status(client, admin_headers, order_id, target)
    assert result.status_code == 400 and error_code(result) == "INVALID_STATUS", result.text
    [detail] = result.json["error"]["details"]
    assert detail["currentStatus"] == source
    assert detail["allowedTransitions"] == list(lifecycle.ORDER_TRANSITIONS[source])
    after = client.simulate_get(f"/api/orders/{order_id}", headers=admin_headers).json
    assert (after["status"], after["version"]) == (before["status"], before["version"])


def test_if_match_guards_against_stale_versions(client, admin_headers, make_offer):
    order_id = place(client, admin_headers, make_offer())
    got = client.simulate_get(f"/api/orders/{order_id}", headers=admin_headers)
    assert got.headers["etag"] == '"1"'

    ok = patch_status(client, admin_headers, order_id, "processing", **{"If-Match": got.headers["etag"]})
    assert ok.status_code == 200 and ok.headers["etag"] == '"2"'

    stale = patch_status(client, admin_headers, order_id, "shipped", **{"If-Match": '"1"'})
    assert stale.status_code == 412 and error_code(stale) == "PRECONDITION_FAILED"
    assert stale.json["error"]["details"][0]["currentVersion"] == 2
    assert client.simulate_get(f"/api/orders/{order_id}", headers=admin_headers).json["status"] == "processing"

    assert patch_status(client, admin_headers, order_id, "shipped", **{"If-Match": 'W/"2"'}).status_code == 200


def test_status_changes_are_for_staff(client, admin_headers, make_offer, make_key):
    customer = unique_customer()
    order_id = place(client, admin_headers, make_offer(), customer)
    own = patch_status(client, auth(make_key("customer", customer)), order_id, "cancelled")
    assert own.status_code == 403 and error_code(own) == "FORBIDDEN"
    ops = patch_status(client, auth(make_key("ops")), order_id, "cancelled")
    assert ops.status_code == 200
    assert history(client, admin_headers, order_id)[-1]["actor"].startswith("ops:")
    missing = patch_status(client, admin_headers, "ord_unknown", "cancelled")
    assert missing.status_code == 404 and error_code(missing) == "ORDER_NOT_FOUND"


def test_status_body_is_validated(client, admin_headers, make_offer):
    order_id = place(client, admin_headers, make_offer())
    result = client.simulate_patch(
        f"/api/orders/{order_id}/status", json={"state": "processing"}, headers=admin_headers
    )
    assert result.status_code == 400 and error_code(result) == "VALIDATION_ERROR"


def test_twenty_concurrent_updates_lose_nothing(app, admin_headers, make_offer, deps):
    """20 threads race on one order: 10 send If-Match "1" (at most one may win, the rest 412),
    10 send none and try the lifecycle's steps. Every success is one version and one history row."""
    client = testing.TestClient(app)
    order_id = place(client, admin_headers, make_offer())
    steps = ["processing", "shipped", "completed", "refunded"]
    barrier = threading.Barrier(20)
    outcomes: list[tuple[bool, int, dict]] = []
    lock = threading.Lock()

    def racer(index: int) -> None:
        with_if_match = index < 10
        extra = {"If-Match": '"1"'} if with_if_match else {}
        target = "processing" if with_if_match else steps[index % 4]
        barrier.wait()
        result = patch_status(
            testing.TestClient(app), admin_headers, order_id, target, reason=f"racer {index}", **extra
        )
        with lock:
            outcomes.append((with_if_match, result.status_code, result.json))

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(outcomes) == 20

    successes = [body for _, status, body in outcomes if status == 200]
    assert all(status in (200, 400, 412) for _, status, _ in outcomes)
    assert all(with_if_match for with_if_match, status, _ in outcomes if status == 412)
    if_match_wins = sum(1 for with_if_match, status, _ in outcomes if with_if_match and status == 200)
    assert if_match_wins <= 1 and sum(1 for m, s, _ in outcomes if m and s == 412) == 10 - if_match_wins
    assert all(error_code_of(body) == "INVALID_STATUS" for with_if_match, status, body in outcomes if status == 400)
    assert len({body["version"] for body in successes}) == len(successes)

    order = client.simulate_get(f"/api/orders/{order_id}", params={"$expand": "history"}, headers=admin_headers).json
    assert order["version"] == 1 + len(successes)
    rows = order["history"]
    assert [row["version"] for row in rows] == list(range(1, order["version"] + 1))  # no gaps
    assert all(rows[i]["fromStatus"] == rows[i - 1]["toStatus"] for i in range(1, len(rows)))
    assert rows[-1]["toStatus"] == order["status"]
    with deps.db.reader() as session:
        assert session.get(Order, order_id).version == order["version"]


def error_code_of(body: dict) -> str:
    return body["error"]["code"]


def test_optimistic_clients_converge_through_412(app, admin_headers, make_offer):
    """8 clients each read the ETag and PATCH the next step with If-Match, retrying on 412:
    the order walks the whole lifecycle once, each step exactly once."""
    client = testing.TestClient(app)
    order_id = place(client, admin_headers, make_offer())
    following = {"pending_payment": "processing", "processing": "shipped", "shipped": "completed"}
    codes: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        local = testing.TestClient(app)
        for _ in range(50):
            got = local.simulate_get(f"/api/orders/{order_id}", headers=admin_headers)
            target = following.get(got.json["status"])
            if target is None:
                return
            result = patch_status(local, admin_headers, order_id, target, **{"If-Match": got.headers["etag"]})
            with lock:
                codes.append(result.status_code)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert codes.count(200) == 3 and set(codes) <= {200, 412}
    rows = history(client, admin_headers, order_id)
    assert [row["toStatus"] for row in rows] == ["pending_payment", "processing", "shipped", "completed"]


# --- items ----------------------------------------------------------------------------------------


def two_item_order(client, headers, make_offer, customer=None) -> tuple[str, str, str, list[str]]:
    first, second = make_offer("10.00", stock=10), make_offer("2.50", stock=10)
    body = {
        "customerId": customer or unique_customer(),
        "items": [{"offerId": first, "quantity": 2, "price": 10.00}, {"offerId": second, "quantity": 4, "price": 2.50}],
        "paymentMethod": "credit_card",
        "paymentGatewayId": "sandbox",
    }
    created = client.simulate_post("/api/orders", json=body, headers=headers)
    assert created.status_code == 201 and created.json["totalAmount"] == 30.00
    order_id = created.json["orderId"]
    items = [i["id"] for i in client.simulate_get(f"/api/orders/{order_id}", headers=headers).json["items"]]
    return order_id, first, second, items


def post_items(client, headers, order_id, actions) -> testing.Result:
    return client.simulate_post(
        "/api/orders/items",
        json={"orderId": order_id, "items": [{"itemId": i, "action": a, "reason": "Out of stock"} for i, a in actions]},
        headers=headers,
    )


def test_cancelling_an_item_releases_stock_and_recomputes_the_total(client, admin_headers, make_offer):
    order_id, first, second, (item1, item2) = two_item_order(client, admin_headers, make_offer)
    result = post_items(client, admin_headers, order_id, [(item1, "cancel"), (item2, "verify")])
    assert result.status_code == 200, result.text
    assert result.json["orderId"] == order_id
    assert result.json["items"] == [{"itemId": item1, "status": "cancelled"}, {"itemId": item2, "status": "verified"}]
    assert result.json["totalAmount"] == 10.00 and result.json["orderStatus"] == "pending_payment"
    assert stock(client, admin_headers, first) == (10, 0)
    assert stock(client, admin_headers, second) == (6, 4)
    order = client.simulate_get(f"/api/orders/{order_id}", headers=admin_headers).json
    assert order["totalAmount"] == 10.00 and order["version"] == 2
    assert [i["status"] for i in order["items"]] == ["cancelled", "verified"]

    again = post_items(client, admin_headers, order_id, [(item1, "cancel")])  # a repeat is a no-op
    assert again.status_code == 200 and again.json["version"] == 2
    assert stock(client, admin_headers, first) == (10, 0)


def test_item_actions_are_all_or_nothing(client, admin_headers, make_offer):
    order_id, first, _, (item1, item2) = two_item_order(client, admin_headers, make_offer)
    unknown = post_items(client, admin_headers, order_id, [(item1, "cancel"), ("item_nope", "cancel")])
    assert unknown.status_code == 400 and error_code(unknown) == "ITEM_NOT_FOUND"
    assert unknown.json["error"]["details"] == [
        {"field": "items[1].itemId", "itemId": "item_nope", "orderId": order_id}
    ]

    assert post_items(client, admin_headers, order_id, [(item2, "cancel")]).status_code == 200
    forbidden = post_items(client, admin_headers, order_id, [(item1, "verify"), (item2, "verify")])
    assert forbidden.status_code == 400 and error_code(forbidden) == "INVALID_STATUS"
    [detail] = forbidden.json["error"]["details"]
    assert (detail["itemId"], detail["currentStatus"], detail["allowedTransitions"]) == (item2, "cancelled", [])

    order = client.simulate_get(f"/api/orders/{order_id}", headers=admin_headers).json
    assert [i["status"] for i in order["items"]] == ["pending", "cancelled"]  # item1 untouched both times
    assert stock(client, admin_headers, first) == (8, 2)


def test_cancelling_the_last_live_item_cancels_the_order(client, admin_headers, make_offer):
    order_id, first, second, (item1, item2) = two_item_order(client, admin_headers, make_offer)
    assert post_items(client, admin_headers, order_id, [(item1, "cancel")]).status_code == 200
    result = post_items(client, admin_headers, order_id, [(item2, "cancel")])
    assert result.status_code == 200 and result.json["orderStatus"] == "cancelled"
    assert result.json["totalAmount"] == 0
    rows = history(client, admin_headers, order_id)
    assert (rows[-1]["fromStatus"], rows[-1]["toStatus"]) == ("pending_payment", "cancelled")
    assert rows[-1]["reason"].startswith("all items cancelled")
    assert stock(client, admin_headers, first) == (10, 0) and stock(client, admin_headers, second) == (10, 0)


def test_items_of_a_shipped_order_cannot_change(client, admin_headers, make_offer):
    order_id, _, _, (item1, _) = two_item_order(client, admin_headers, make_offer)
    walk(client, admin_headers, order_id, "shipped")
    result = post_items(client, admin_headers, order_id, [(item1, "cancel")])
    assert result.status_code == 400 and error_code(result) == "INVALID_STATUS"
    assert result.json["error"]["details"][0]["orderStatus"] == "shipped"


def test_customers_act_on_their_own_items_only(client, admin_headers, make_offer, make_key):
    alice, bob = unique_customer(), unique_customer()
    order_id, _, _, (item1, _) = two_item_order(client, admin_headers, make_offer, customer=alice)
    other = post_items(client, auth(make_key("customer", bob)), order_id, [(item1, "cancel")])
    assert other.status_code == 404 and error_code(other) == "ORDER_NOT_FOUND"
    own = post_items(client, auth(make_key("customer", alice)), order_id, [(item1, "cancel")])
    assert own.status_code == 200 and own.json["items"][0]["status"] == "cancelled"


def pay(client, headers, order_id, amount) -> None:
    """Pay an order through the payments API (sandbox gateway, real worker)."""
    result = client.simulate_post(
        "/api/orders/payment",
        json={
            "orderId": order_id,
            "action": "process",
            "paymentDetails": {"method": "credit_card", "token": "tok_visa", "amount": amount},
        },
        headers={**headers, "Prefer": "wait=20"},
    )
    assert result.status_code == 200 and result.json["paymentStatus"] == "completed", result.text


def ledger_refunds(db, order_id) -> list[Decimal]:
    """Refunds the sandbox gateway booked against the order's charges."""
    with db.reader() as session:
        charges = select(SandboxLedgerEntry.id).where(
            SandboxLedgerEntry.reference == order_id, SandboxLedgerEntry.kind == "charge"
        )
        return sorted(
            session.scalars(
                select(SandboxLedgerEntry.amount).where(
                    SandboxLedgerEntry.kind == "refund", SandboxLedgerEntry.parent_id.in_(charges)
                )
            )
        )


def test_cancelling_a_paid_order_refunds_through_the_gateway(client, admin_headers, make_offer, deps, worker):
    """Paid: cancelling an item refunds its share, cancelling the order refunds the rest; the
    sandbox ledger books both refunds and the order ends fully refunded, stock back on sale."""
    order_id, first, second, (item1, _) = two_item_order(client, admin_headers, make_offer)
    pay(client, admin_headers, order_id, 30.00)
    assert stock(client, admin_headers, first) == (8, 0)  # the hold was committed by → processing

    assert post_items(client, admin_headers, order_id, [(item1, "cancel")]).status_code == 200
    assert stock(client, admin_headers, first) == (10, 0)
    assert patch_status(client, admin_headers, order_id, "cancelled").status_code == 200
    assert stock(client, admin_headers, second) == (10, 0)

    def refunded():
        order = client.simulate_get(f"/api/orders/{order_id}", headers=admin_headers).json
        return order if order["paymentStatus"] == "refunded" else None

    order = wait_for(refunded, timeout=30, what="both refunds to reach the gateway")
    assert order["status"] == "cancelled"
    assert ledger_refunds(deps.db, order_id) == [Decimal("10.00"), Decimal("20.00")]
    with deps.db.reader() as session:
        refunds = session.scalars(select(Payment).where(Payment.order_id == order_id, Payment.action == "refund"))
        assert sorted((p.state, p.amount) for p in refunds) == [
            ("succeeded", Decimal("10.00")),
            ("succeeded", Decimal("20.00")),
        ]


def test_completed_to_refunded_refunds_in_full(client, admin_headers, make_offer, deps, worker):
    order_id, *_ = two_item_order(client, admin_headers, make_offer)
    pay(client, admin_headers, order_id, 30.00)
    walk_from_processing = ["shipped", "completed", "refunded"]
    for step in walk_from_processing:
        assert patch_status(client, admin_headers, order_id, step).status_code == 200
    wait_for(lambda: ledger_refunds(deps.db, order_id), timeout=30, what="the refund")
    assert ledger_refunds(deps.db, order_id) == [Decimal("30.00")]
    order = wait_for(
        lambda: (
            (o := client.simulate_get(f"/api/orders/{order_id}", headers=admin_headers).json)["paymentStatus"]
            == "refunded"
            and o
        ),
        timeout=30,
        what="the payment status",
    )
    assert order["status"] == "refunded"
    assert [row["toStatus"] for row in history(client, admin_headers, order_id)][-1] == "refunded"  # no second row


def test_unpaid_cancel_queues_no_refund(client, admin_headers, make_offer, deps):
    order_id = place(client, admin_headers, make_offer())
    assert patch_status(client, admin_headers, order_id, "cancelled").status_code == 200
    with deps.db.reader() as session:
        assert not session.scalars(select(Job).where(Job.order_id == order_id, Job.type == "refund")).all()
        assert session.scalar(select(StatusHistory.to_status).order_by(StatusHistory.id.desc()).limit(1))


def _job_state(db, job_id: str) -> str | None:  # noqa: ANN001
    with db.reader() as session:
        return session.scalar(select(Job.state).where(Job.id == job_id))


def test_a_charge_that_lands_after_cancellation_is_refunded(client, admin_headers, make_offer, deps, worker):
    """The interleaving: the payment task reached the gateway, the order was cancelled (nothing
    captured yet, so no refund), then the charge's success arrived: it is refunded, once."""
    order_id, *_ = two_item_order(client, admin_headers, make_offer)
    queued = request_payment(
        deps.db, SYSTEM, PaymentRequest(order_id, "process", "credit_card", "tok_visa", Decimal("30.00"))
    )
    attempt = _start(deps.db, queued.transaction_id)
    gateway_txn = _call_gateway(deps.gateways, attempt)
    assert patch_status(client, admin_headers, order_id, "cancelled").status_code == 200
    _finish_success(deps.db, attempt, gateway_txn, None)
    _finish_success(deps.db, attempt, gateway_txn, None)  # a repeated confirmation adds nothing

    with deps.db.reader() as session:
        refund_jobs = session.scalars(
            select(Job.id)
            .join(Payment, Payment.job_id == Job.id)
            .where(Payment.order_id == order_id, Payment.action == "refund")
        ).all()
    assert len(refund_jobs) == 1
    deps.sender.send(JobRef.of(PAYMENT, refund_jobs[0]))  # (else the relay)
    wait_for(lambda: ledger_refunds(deps.db, order_id), timeout=30, what="the refund")
    # The gateway books the refund before the task's own transaction commits the outcome.
    wait_for(lambda: _job_state(deps.db, refund_jobs[0]) in ("succeeded", "failed"), timeout=30, what="the refund task")
    assert ledger_refunds(deps.db, order_id) == [Decimal("30.00")]
    order = client.simulate_get(f"/api/orders/{order_id}", headers=admin_headers).json
    assert (order["status"], order["paymentStatus"]) == ("cancelled", "refunded")
