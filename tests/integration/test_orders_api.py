"""Creating and reading orders through the API, with a real database, Redis and worker."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from models import Job, Order, OrderItem, StatusHistory
from tests.conftest import auth, unique_customer
from tests.integration.helpers import brief_order, error_code, wait_task
from tests.support.polling import wait_for

ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def test_brief_create_request_returns_brief_fields(client, admin_headers, make_offer, deps):
    offer = make_offer("99.99", stock=5)
    customer = unique_customer()
    result = client.simulate_post("/api/orders", json=brief_order(offer, customer), headers=admin_headers)
    assert result.status_code == 201, result.text
    body = result.json
    assert set(body) >= {"orderId", "status", "totalAmount", "paymentUrl", "createdAt", "currency", "taskId"}
    assert body["orderId"].startswith("ord_")
    assert body["status"] == "pending_payment"
    assert body["totalAmount"] == 99.99
    assert '"totalAmount":99.99' in result.text  # a JSON number, two decimals, never a string
    assert body["currency"] == "USD"
    assert body["paymentUrl"].endswith(f"/api/orders/{body['orderId']}/checkout")
    assert ISO_Z.match(body["createdAt"]) and ISO_Z.match(body["holdExpiresAt"])
    assert body["taskId"].startswith("task_")
    assert result.headers["location"] == f"/api/orders/{body['orderId']}"

    with deps.db.reader() as session:
        assert (
            session.scalar(select(func.count()).select_from(OrderItem).where(OrderItem.order_id == body["orderId"]))
            == 1
        )
        history = session.scalars(select(StatusHistory).where(StatusHistory.order_id == body["orderId"])).all()
        assert [(h.from_status, h.to_status) for h in history] == [(None, "pending_payment")]
        job = session.get(Job, body["taskId"])
        assert job is not None and job.order_id == body["orderId"] and job.queue == "payments"


def test_get_order_returns_brief_shape(client, admin_headers, make_offer):
    offer = make_offer("12.34", stock=5)
    customer = unique_customer()
    created = client.simulate_post(
        "/api/orders", json=brief_order(offer, customer, quantity=3, price=12.34), headers=admin_headers
    ).json
    result = client.simulate_get(f"/api/orders/{created['orderId']}", headers=admin_headers)
    assert result.status_code == 200
    body = result.json
    assert body["id"] == created["orderId"]
    assert body["customerId"] == customer
    assert body["status"] == "pending_payment"
    assert body["totalAmount"] == 37.02
    assert body["createdAt"] == created["createdAt"]
    assert body["version"] == 1 and result.headers["etag"] == '"1"'
    [item] = body["items"]
    assert item["id"].startswith("item_")
    assert (item["offerId"], item["quantity"], item["price"], item["status"]) == (offer, 3, 12.34, "pending")


def test_history_is_expanded_on_request(client, admin_headers, make_offer):
    created = client.simulate_post(
        "/api/orders", json=brief_order(make_offer(), unique_customer()), headers=admin_headers
    ).json
    body = client.simulate_get(
        f"/api/orders/{created['orderId']}", params={"$expand": "history"}, headers=admin_headers
    ).json
    [entry] = body["history"]
    assert entry["toStatus"] == "pending_payment" and entry["fromStatus"] is None
    assert entry["actor"].startswith("admin:")


def test_checkout_task_reaches_succeeded_in_a_real_worker(client, admin_headers, make_offer, worker):
    created = client.simulate_post(
        "/api/orders", json=brief_order(make_offer(), unique_customer()), headers=admin_headers
    ).json
    task = wait_task(client, created["taskId"], admin_headers)
    assert task["state"] == "succeeded", task
    assert task["type"] == "checkout"
    assert task["result"]["orderId"] == created["orderId"]
    assert task["startedAt"] and task["finishedAt"]
    assert task["progress"]["percent"] == 100.0


def test_task_logs_carry_the_request_id(client, admin_headers, make_offer, worker, worker_log):
    request_id = "req-trace-" + unique_customer()
    created = client.simulate_post(
        "/api/orders",
        json=brief_order(make_offer(), unique_customer()),
        headers={**admin_headers, "X-Request-Id": request_id},
    )
    assert created.headers["x-request-id"] == request_id
    wait_task(client, created.json["taskId"], admin_headers)
    # Every line written while the task runs names the request; the consumer's "received" line is
    # written before any task code sees the message, so it carries only the task id. The task is
    # visible as finished as soon as its row commits, a moment before its last lines are written.

    def task_lines() -> list[str]:
        return [
            line
            for line in worker_log.read_text().splitlines()
            if created.json["taskId"] in line and "celery.worker.strategy" not in line
        ]

    wait_for(lambda: len(task_lines()) >= 3, timeout=10, what="the task's log lines")
    lines = task_lines()
    assert len(lines) >= 3 and all(f'"request_id": "{request_id}"' in line for line in lines), lines


def test_unknown_task_is_404(client, admin_headers):
    result = client.simulate_get("/api/tasks/task_doesnotexist", headers=admin_headers)
    assert result.status_code == 404 and error_code(result) == "TASK_NOT_FOUND"


def test_money_is_exact(client, admin_headers, make_offer):
    offer = make_offer("0.10", stock=100)
    body = client.simulate_post(
        "/api/orders", json=brief_order(offer, unique_customer(), quantity=3, price=0.10), headers=admin_headers
    ).json
    assert Decimal(str(body["totalAmount"])) == Decimal("0.30")  # 0.1 * 3 in floats would be 0.30000000000000004


def test_order_with_several_items_totals_them(client, admin_headers, make_offer, deps):
    first, second = make_offer("19.99", stock=10), make_offer("5.01", stock=10)
    request = {
        "customerId": unique_customer(),
        "items": [
            {"offerId": first, "quantity": 2, "price": 19.99},
            {"offerId": second, "quantity": 1, "price": 5.01},
            {"offerId": first, "quantity": 1, "price": 19.99},
        ],
        "paymentMethod": "credit_card",
        "paymentGatewayId": "sandbox",
    }
    result = client.simulate_post("/api/orders", json=request, headers=admin_headers)
    assert result.status_code == 201, result.text
    assert result.json["totalAmount"] == 64.98
    offer = client.simulate_get(f"/api/offers/{first}", headers=admin_headers).json
    assert (offer["stockAvailable"], offer["stockReserved"]) == (7, 3)


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"price": 98.99}, "PRICE_MISMATCH", "items[0].price"),
        ({"offerId": "offer_unknown_xyz"}, "OFFER_NOT_FOUND", "items[0].offerId"),
        ({"quantity": 6}, "INSUFFICIENT_INVENTORY", None),
    ],
)
def test_offer_checks_refuse_and_write_nothing(client, admin_headers, make_offer, deps, change, code, field):
    offer = make_offer("99.99", stock=5)
    customer = unique_customer()
    request = brief_order(offer, customer)
    request["items"][0].update(change)
    result = client.simulate_post("/api/orders", json=request, headers=admin_headers)
    assert result.status_code == 400 and error_code(result) == code, result.text
    details = result.json["error"]["details"]
    if field:
        assert details[0]["field"] == field
    else:
        assert details == [{"offerId": offer, "requested": 6, "available": 5}]
    with deps.db.reader() as session:
        assert session.scalar(select(func.count()).select_from(Order).where(Order.customer_id == customer)) == 0
    stock = client.simulate_get(f"/api/offers/{offer}", headers=admin_headers).json
    assert (stock["stockAvailable"], stock["stockReserved"]) == (5, 0)


def test_failed_second_reservation_releases_the_first(client, admin_headers, make_offer):
    plenty, scarce = make_offer("1.00", stock=50), make_offer("2.00", stock=1)
    request = {
        "customerId": unique_customer(),
        "items": [{"offerId": plenty, "quantity": 5, "price": 1.00}, {"offerId": scarce, "quantity": 2, "price": 2.00}],
        "paymentMethod": "credit_card",
        "paymentGatewayId": "stripe_1",
    }
    result = client.simulate_post("/api/orders", json=request, headers=admin_headers)
    assert error_code(result) == "INSUFFICIENT_INVENTORY"
    assert client.simulate_get(f"/api/offers/{plenty}", headers=admin_headers).json["stockAvailable"] == 50


def test_customer_reads_own_order_but_not_anothers(client, admin_headers, make_offer, make_key):
    alice, bob = unique_customer(), unique_customer()
    alice_key, bob_key = make_key("customer", alice), make_key("customer", bob)
    created = client.simulate_post("/api/orders", json=brief_order(make_offer(), alice), headers=auth(alice_key))
    assert created.status_code == 201
    order_id = created.json["orderId"]
    assert client.simulate_get(f"/api/orders/{order_id}", headers=auth(alice_key)).status_code == 200
    other = client.simulate_get(f"/api/orders/{order_id}", headers=auth(bob_key))
    assert other.status_code == 404 and error_code(other) == "ORDER_NOT_FOUND"
    task = client.simulate_get(f"/api/tasks/{created.json['taskId']}", headers=auth(bob_key))
    assert task.status_code == 404 and error_code(task) == "TASK_NOT_FOUND"


def test_customer_cannot_order_for_another_customer(client, make_offer, make_key):
    key = make_key("customer", unique_customer())
    result = client.simulate_post("/api/orders", json=brief_order(make_offer(), unique_customer()), headers=auth(key))
    assert result.status_code == 403 and error_code(result) == "FORBIDDEN"


def test_requests_without_a_valid_key_are_401(client, make_offer):
    request = brief_order("offer_456", unique_customer())
    for headers in ({}, {"Authorization": "Bearer sk_not_a_key"}, {"Authorization": "Basic abc"}):
        result = client.simulate_post("/api/orders", json=request, headers=headers)
        assert result.status_code == 401 and error_code(result) == "UNAUTHORIZED", headers
        assert result.headers["www-authenticate"].startswith("Bearer")


def test_revoked_key_stops_working(client, admin_headers, make_key):
    key = make_key("ops")
    assert client.simulate_get("/api/offers/none", headers=auth(key)).status_code == 404
    assert client.simulate_delete(f"/api/keys/{key.id}", headers=admin_headers).status_code == 204
    assert client.simulate_get("/api/offers/none", headers=auth(key)).status_code == 401
    again = client.simulate_delete(f"/api/keys/{key.id}", headers=admin_headers)
    assert again.status_code == 404 and error_code(again) == "NOT_FOUND"
