"""``POST /api/payments/webhooks/{gatewayId}``: signatures, replay window, duplicates, early events.

Events name a genuine checkout session (opened the way the checkout task opens it): an event for a
session the gateway never opened is refused (see test_payment_attacks.py).
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select, update

from models import Job, Offer, Order, OrderItem, StatusHistory, WebhookEvent
from models.ids import new_id
from models.types import utcnow
from services.payments.checkout import open_checkout
from services.payments.gateways.registry import Gateways, webhook_secret
from services.payments.gateways.signing import sign
from tests.conftest import unique_customer
from tests.integration.helpers import error_code, history_of, order_row, payments_of, place
from tests.support.polling import wait_for

URL = "/api/payments/webhooks/stripe_1"


def genuine_session(deps, settings, order_id: str) -> str:
    """The order's hosted checkout session, opened as the checkout task opens it."""
    with deps.db.reader() as session:
        args = session.scalar(select(Job.args).where(Job.order_id == order_id, Job.type == "checkout"))
    open_checkout(deps.db, deps.gateways, args)  # the checkout task's work, run here
    [checkout] = payments_of(deps.db, order_id, checkout=True)
    return checkout.checkout_session_id


def paid_session_for_unseen_order(deps, settings, order_id: str, amount: Decimal) -> str:
    """A session the sandbox opened and the customer paid for an order we have not seen yet
    (its webhook then arrives before the order is visible)."""
    sandbox = Gateways(settings, deps.db, deliver=lambda *_: None).sandbox("stripe_1")
    opened = sandbox.create_checkout_session(
        amount=amount,
        currency="USD",
        order_id=order_id,
        success_url="https://shop.example/ok",
        cancel_url="https://shop.example/cancel",
        expires_at=utcnow() + timedelta(minutes=30),
        idempotency_key=f"checkout:{order_id}",
    )
    sandbox.pay_hosted(opened.id)
    return opened.id


def completed_event(order_id: str, amount: str = "99.99", session_id: str | None = None) -> dict:
    session_id = session_id or new_id("cs_sbx")
    return {
        "id": new_id("evt"),
        "object": "event",
        "type": "checkout.session.completed",
        "created": int(time.time()),
        "data": {
            "object": {
                "id": session_id,
                "object": "checkout.session",
                "status": "complete",
                "payment_status": "paid",
                "payment_intent": new_id("pi_sbx"),
                "amount_total": int(Decimal(amount) * 100),
                "currency": "usd",
                "client_reference_id": order_id,
                "metadata": {"orderId": order_id},
            }
        },
    }


def post_event(client, settings, event: dict, *, timestamp: int | None = None, secret: str | None = None, header=None):
    body = json.dumps(event).encode()
    signature = sign(body, secret or webhook_secret(settings, "stripe_1"), timestamp)
    headers = {"Content-Type": "application/json", "Sandbox-Signature": header if header is not None else signature}
    return client.simulate_post(URL, body=body, headers=headers)


def stored(deps, event_id: str) -> WebhookEvent | None:
    with deps.db.reader() as session:
        return session.scalar(select(WebhookEvent).where(WebhookEvent.event_id == event_id))


def test_a_signed_event_pays_the_order(client, admin_headers, make_offer, deps, settings):
    offer = make_offer(stock=2)
    order = place(client, admin_headers, offer)
    session_id = genuine_session(deps, settings, order["orderId"])
    result = post_event(client, settings, completed_event(order["orderId"], session_id=session_id))
    assert result.status_code == 200 and result.json["status"] == "applied", result.text
    current = order_row(deps.db, order["orderId"])
    assert (current.status, current.payment_status) == ("processing", "completed")
    stock = client.simulate_get(f"/api/offers/{offer}", headers=admin_headers).json
    assert (stock["stockAvailable"], stock["stockReserved"]) == (1, 0)


def test_forged_or_missing_signatures_are_400_and_change_nothing(client, admin_headers, make_offer, deps, settings):
    order = place(client, admin_headers, make_offer())
    event = completed_event(order["orderId"], session_id=genuine_session(deps, settings, order["orderId"]))
    for kwargs in ({"secret": "whsec_forged"}, {"header": ""}, {"header": "t=1,v1=deadbeef"}, {"header": "garbage"}):
        result = post_event(client, settings, event, **kwargs)
        assert result.status_code == 400 and error_code(result) == "INVALID_SIGNATURE", (kwargs, result.text)
    # A valid signature over another body is a forgery too.
    body = json.dumps(event).encode()
    tampered = body.replace(b'"paid"', b'"PAID"')
    headers = {"Sandbox-Signature": sign(body, webhook_secret(settings, "stripe_1"))}
    assert client.simulate_post(URL, body=tampered, headers=headers).status_code == 400
    assert stored(deps, event["id"]) is None
    assert order_row(deps.db, order["orderId"]).status == "pending_payment"
    assert history_of(deps.db, order["orderId"]) == [(None, "pending_payment")]


def test_stale_timestamps_are_refused(client, admin_headers, make_offer, deps, settings):
    order = place(client, admin_headers, make_offer())
    event = completed_event(order["orderId"], session_id=genuine_session(deps, settings, order["orderId"]))
    stale = post_event(client, settings, event, timestamp=int(time.time()) - 6 * 60)
    assert stale.status_code == 400 and error_code(stale) == "INVALID_SIGNATURE"
    assert "older than 300 seconds" in stale.json["error"]["details"][0]["reason"]
    assert stored(deps, event["id"]) is None and order_row(deps.db, order["orderId"]).status == "pending_payment"
    # Within the window (4 minutes old) the same event is accepted.
    fresh = post_event(client, settings, event, timestamp=int(time.time()) - 4 * 60)
    assert fresh.status_code == 200 and order_row(deps.db, order["orderId"]).status == "processing"


def test_a_redelivered_event_is_applied_once(client, admin_headers, make_offer, deps, settings):
    offer = make_offer(stock=3)
    order = place(client, admin_headers, offer, quantity=2, price=99.99)
    event = completed_event(
        order["orderId"], amount="199.98", session_id=genuine_session(deps, settings, order["orderId"])
    )
    first = post_event(client, settings, event)
    version = order_row(deps.db, order["orderId"]).version
    second = post_event(client, settings, event)
    assert first.status_code == second.status_code == 200
    assert (first.json["status"], second.json["status"]) == ("applied", "duplicate")
    assert history_of(deps.db, order["orderId"]) == [(None, "pending_payment"), ("pending_payment", "processing")]
    assert order_row(deps.db, order["orderId"]).version == version
    stock = client.simulate_get(f"/api/offers/{offer}", headers=admin_headers).json
    assert (stock["stockAvailable"], stock["stockReserved"]) == (1, 0)  # committed once, not twice
    session_id = event["data"]["object"]["id"]
    [checkout] = [
        p for p in payments_of(deps.db, order["orderId"], checkout=True) if p.checkout_session_id == session_id
    ]
    assert checkout.state == "succeeded"


def insert_order(deps, order_id: str, offer_id: str, price: Decimal) -> None:
    """An order that appears after its event (as if its transaction committed late)."""
    now = utcnow()
    with deps.db.transaction() as session:
        session.execute(
            update(Offer)
            .where(Offer.id == offer_id)
            .values(stock_available=Offer.stock_available - 1, stock_reserved=Offer.stock_reserved + 1)
        )
        session.add(
            Order(
                id=order_id,
                customer_id=unique_customer(),
                status="pending_payment",
                payment_status="unpaid",
                payment_method="credit_card",
                payment_gateway_id="stripe_1",
                total_amount=price,
                currency="USD",
                item_count=1,
                version=1,
                hold_expires_at=now,
                created_at=now,
                updated_at=now,
            )
        )
        session.flush()
        session.add(
            OrderItem(
                id=new_id("item"),
                order_id=order_id,
                position=0,
                offer_id=offer_id,
                quantity=1,
                price=price,
                status="pending",
            )
        )
        session.add(
            StatusHistory(order_id=order_id, to_status="pending_payment", actor="test", version=1, created_at=now)
        )


def test_an_early_event_is_stored_and_applied_once_its_order_appears(
    client, admin_headers, make_offer, deps, settings, worker
):
    offer = make_offer("25.00", stock=4)
    order_id = new_id("ord")
    session_id = paid_session_for_unseen_order(deps, settings, order_id, Decimal("25.00"))
    event = completed_event(order_id, amount="25.00", session_id=session_id)
    early = post_event(client, settings, event)
    assert early.status_code == 200 and early.json["status"] == "pending", early.text
    row = stored(deps, event["id"])
    assert row is not None and row.state == "pending" and row.order_id == order_id
    assert client.simulate_get(f"/api/orders/{order_id}", headers=admin_headers).status_code == 404

    insert_order(deps, order_id, offer, Decimal("25.00"))
    wait_for(lambda: order_row(deps.db, order_id).status == "processing", timeout=20, what="the early event")
    assert stored(deps, event["id"]).state == "applied"
    assert history_of(deps.db, order_id)[-1] == ("pending_payment", "processing")
    stock = client.simulate_get(f"/api/offers/{offer}", headers=admin_headers).json
    assert (stock["stockAvailable"], stock["stockReserved"]) == (3, 0)
    # Redelivered after it was applied: acknowledged, nothing changes.
    assert post_event(client, settings, event).json["status"] == "duplicate"


def test_unknown_gateway_is_404(client, settings):
    result = client.simulate_post("/api/payments/webhooks/nope", body=b"{}", headers={"Sandbox-Signature": "x"})
    assert result.status_code == 404
