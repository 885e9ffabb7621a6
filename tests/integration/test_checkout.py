"""Hosted checkout: the redirect, paying on the sandbox page, and the webhook racing the return."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import requests

from api.links import PublicLinks
from services.kernel.principal import SYSTEM
from services.orders.placing import ItemRequest, PlacementPolicy, PlaceOrder, place_order
from services.payments.gateways.registry import webhook_secret
from services.payments.gateways.sandbox.gateway import SandboxGateway
from tests.conftest import unique_customer
from tests.integration.helpers import (
    history_of,
    order_row,
    payments_of,
    place,
    sandbox_charges,
    wait_task,
)
from tests.support.polling import wait_for


def checkout_location(client, order_id: str) -> str:
    result = client.simulate_get(f"/api/orders/{order_id}/checkout")
    assert result.status_code == 303, result.text
    return result.headers["location"]


def test_checkout_redirect_waits_for_the_session_then_303s(client, deps, settings, make_offer, worker):
    command = PlaceOrder(unique_customer(), [ItemRequest(make_offer(), 1, 99.99)], "credit_card", "stripe_1")
    policy = PlacementPolicy(
        settings.currency, timedelta(minutes=30), frozenset(settings.gateways), PublicLinks(settings.public_base_url)
    )
    placed = place_order(deps.db, SYSTEM, command, policy)  # queued, not sent yet
    early = client.simulate_get(f"/api/orders/{placed.order.id}/checkout")  # public: a browser follows it
    assert early.status_code == 202 and early.headers["retry-after"] == "1", early.text
    deps.sender.send(placed.checkout_job)
    wait_for(lambda: order_row(deps.db, placed.order.id).checkout_url, what="the checkout session")
    location = checkout_location(client, placed.order.id)
    # The hosted page's URL carries the session's own secret before the session id.
    assert re.match(rf"{re.escape(settings.public_base_url)}/sandbox/checkout/[\w-]{{20,}}/cs_sbx_", location)
    [session] = payments_of(deps.db, placed.order.id, checkout=True)
    assert (session.action, session.state, session.checkout_session_id) == (
        "checkout",
        "pending",
        location.rsplit("/", 1)[1],
    )
    assert client.simulate_get("/api/orders/ord_nope/checkout").status_code == 404


def test_paying_on_the_hosted_page_makes_the_order_processing_through_the_webhook(
    client, admin_headers, deps, make_offer, worker, live_server
):
    offer = make_offer(stock=3)
    order = place(client, admin_headers, offer)
    assert wait_task(client, order["taskId"], admin_headers)["state"] == "succeeded"
    page_url = checkout_location(client, order["orderId"])
    page = requests.get(page_url, timeout=10)
    assert page.status_code == 200 and "id='pay'" in page.text and "99.99 USD" in page.text
    # Press Pay, but do not come back: only the gateway's signed webhook can confirm the order.
    paid = requests.post(f"{page_url}/pay", allow_redirects=False, timeout=10)
    assert paid.status_code == 303 and "/checkout/complete?session_id=cs_sbx_" in paid.headers["location"]
    wait_for(lambda: order_row(deps.db, order["orderId"]).status == "processing", what="the webhook", timeout=15)
    assert order_row(deps.db, order["orderId"]).payment_status == "completed"
    assert history_of(deps.db, order["orderId"])[-1] == ("pending_payment", "processing")
    [checkout] = payments_of(deps.db, order["orderId"], checkout=True)
    assert checkout.state == "succeeded" and checkout.gateway_transaction_id.startswith("pi_sbx_")
    assert len(sandbox_charges(deps.db, order["orderId"])) == 1
    stock = client.simulate_get(f"/api/offers/{offer}", headers=admin_headers).json
    assert (stock["stockAvailable"], stock["stockReserved"]) == (2, 0)
    # Coming back later shows the same, consistent state.
    back = requests.get(paid.headers["location"], timeout=10)
    assert back.status_code == 200 and "processing" in back.text
    assert history_of(deps.db, order["orderId"]).count(("pending_payment", "processing")) == 1


def test_declining_on_the_hosted_page_marks_the_payment_failed(
    client, admin_headers, deps, make_offer, worker, live_server
):
    order = place(client, admin_headers, make_offer())
    wait_task(client, order["taskId"], admin_headers)
    page_url = checkout_location(client, order["orderId"])
    declined = requests.post(f"{page_url}/decline", allow_redirects=True, timeout=10)
    assert declined.status_code == 200 and "declined" in declined.text and "id='pay'" in declined.text
    wait_for(lambda: order_row(deps.db, order["orderId"]).payment_status == "failed", what="the decline webhook")
    assert order_row(deps.db, order["orderId"]).status == "pending_payment"
    assert sandbox_charges(deps.db, order["orderId"]) == []


def test_webhook_and_return_racing_end_in_one_state(
    client, admin_headers, deps, settings, make_offer, worker, live_server
):
    offer = make_offer(stock=5)
    order = place(client, admin_headers, offer, quantity=2, price=99.99)
    wait_task(client, order["taskId"], admin_headers)
    session_id = checkout_location(client, order["orderId"]).rsplit("/", 1)[1]
    deliveries: list[tuple[str, bytes, dict[str, str]]] = []
    gateway = SandboxGateway(
        "stripe_1",
        deps.db,
        webhook_secret=webhook_secret(settings, "stripe_1"),
        base_url=settings.public_base_url,
        deliver=lambda url, body, headers: deliveries.append((url, body, headers)),
    )
    success_url = gateway.pay_hosted(session_id)  # the customer paid; webhook and redirect both pending
    [(hook_url, body, headers)] = deliveries
    answers: dict[str, int] = {}
    start = threading.Barrier(2)

    def webhook() -> None:
        start.wait()
        answers["webhook"] = requests.post(hook_url, data=body, headers=headers, timeout=20).status_code

    def redirect() -> None:
        start.wait()
        answers["return"] = requests.get(success_url, timeout=20).status_code

    threads = [threading.Thread(target=webhook), threading.Thread(target=redirect)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert answers == {"webhook": 200, "return": 200}
    current = order_row(deps.db, order["orderId"])
    assert (current.status, current.payment_status, current.version) == ("processing", "completed", 2)
    assert history_of(deps.db, order["orderId"]) == [(None, "pending_payment"), ("pending_payment", "processing")]
    [checkout] = payments_of(deps.db, order["orderId"], checkout=True)
    assert checkout.state == "succeeded" and checkout.error is None
    stock = client.simulate_get(f"/api/offers/{offer}", headers=admin_headers).json
    assert (stock["stockAvailable"], stock["stockReserved"]) == (3, 0)
    assert len(sandbox_charges(deps.db, order["orderId"])) == 1
