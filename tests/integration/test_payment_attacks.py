"""Attacks on money, replayed: each is refused and leaves nothing behind.

Found by a hostile-input probe against ``make run``: a webhook forged with the built-in default
secret, an event paying 0.01 for a 149.00 order, an invented checkout session, a second charge on
a paid order, a capture after cancellation, shipping an unpaid or refunded order, and pressing
Decline on somebody else's hosted checkout.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from models import Order, Payment, SandboxLedgerEntry, StatusHistory, WebhookEvent
from models.ids import new_id
from services.changes.transitions import change_status
from services.kernel.principal import SYSTEM
from services.payments.execution import execute_payment
from services.payments.gateways.registry import Gateways, webhook_secret
from services.payments.gateways.signing import sign
from services.payments.requests import PaymentRequest, request_payment
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
from tests.support.polling import wait_for

OLD_DEFAULT_SECRET = "dev-insecure-secret-change-me"
WAIT = {"Prefer": "wait=20"}


def completed_event(order_id: str, session_id: str, *, amount: str, currency: str = "usd") -> dict:
    """A checkout.session.completed event as the sandbox (and Stripe) sends it."""
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
                "currency": currency,
                "client_reference_id": order_id,
                "metadata": {"orderId": order_id},
            }
        },
    }


def post_event(client, secret: str, event: dict, gateway_id: str = "stripe_1"):
    body = json.dumps(event).encode()
    headers = {"Content-Type": "application/json", "Sandbox-Signature": sign(body, secret)}
    return client.simulate_post(f"/api/payments/webhooks/{gateway_id}", body=body, headers=headers)


@pytest.fixture
def open_order(client, admin_headers, make_offer, deps, worker):
    """``open_order(price)``: an order whose checkout task (on the real worker) opened its hosted
    session; returns the create response and the session id."""

    def open_one(price: str = "149.00") -> tuple[dict, str]:
        order = place(client, admin_headers, make_offer(price, stock=5), price=float(price))
        assert wait_task(client, order["taskId"], admin_headers)["state"] == "succeeded"
        [checkout] = payments_of(deps.db, order["orderId"], checkout=True)
        return order, checkout.checkout_session_id

    return open_one


def untouched(deps, order_id: str) -> None:
    """The order is as placed: awaiting payment, one history row, no payment but its open session."""
    current = order_row(deps.db, order_id)
    assert (current.status, current.payment_status, current.version) == ("pending_payment", "unpaid", 1)
    assert history_of(deps.db, order_id) == [(None, "pending_payment")]
    assert [(p.action, p.state) for p in payments_of(deps.db, order_id, checkout=True)] == [("checkout", "pending")]


def stored_event(deps, event_id: str) -> WebhookEvent:
    with deps.db.reader() as session:
        return session.scalar(select(WebhookEvent).where(WebhookEvent.event_id == event_id))


def silent_sandbox(settings, deps, gateway_id: str = "stripe_1"):
    """The sandbox behind ``gateway_id`` with its webhooks dropped (the customer pays; no event yet)."""
    return Gateways(settings, deps.db, deliver=lambda *_: None).sandbox(gateway_id)


def ledger(deps, order_id: str, kind: str) -> list[SandboxLedgerEntry]:
    with deps.db.reader() as session:
        charges = session.scalars(
            select(SandboxLedgerEntry).where(
                SandboxLedgerEntry.reference == order_id, SandboxLedgerEntry.kind == "charge"
            )
        ).all()
        if kind == "charge":
            return [c for c in charges if c.status != "declined"]
        return list(
            session.scalars(
                select(SandboxLedgerEntry).where(
                    SandboxLedgerEntry.kind == kind, SandboxLedgerEntry.parent_id.in_([c.id for c in charges])
                )
            )
        )


# -- 1. no built-in secret ------------------------------------------------------------------------


def test_a_webhook_signed_with_the_old_built_in_default_is_refused(client, admin_headers, open_order, deps, settings):
    order, session_id = open_order()
    guessable = "whsec_" + hmac.new(OLD_DEFAULT_SECRET.encode(), b"webhook:stripe_1", hashlib.sha256).hexdigest()
    assert webhook_secret(settings, "stripe_1") != guessable
    event = completed_event(order["orderId"], session_id, amount="149.00")
    result = post_event(client, guessable, event)
    assert result.status_code == 400 and error_code(result) == "INVALID_SIGNATURE", result.text
    assert stored_event(deps, event["id"]) is None
    untouched(deps, order["orderId"])


# -- 2. events apply only when they match -----------------------------------------------------------


def test_an_event_paying_one_cent_for_a_149_order_is_rejected(client, admin_headers, open_order, deps, settings):
    order, session_id = open_order()
    event = completed_event(order["orderId"], session_id, amount="0.01")
    result = post_event(client, webhook_secret(settings, "stripe_1"), event)
    assert result.status_code == 200 and result.json["status"] == "rejected", result.text
    row = stored_event(deps, event["id"])
    assert row.state == "rejected" and "0.01 is not the 149.00 owed" in row.note
    untouched(deps, order["orderId"])
    # The genuine event (the full amount, the right currency) still pays it.
    genuine = completed_event(order["orderId"], session_id, amount="149.00")
    assert post_event(client, webhook_secret(settings, "stripe_1"), genuine).json["status"] == "applied"
    assert order_row(deps.db, order["orderId"]).status == "processing"


def test_an_event_in_another_currency_is_rejected(client, admin_headers, open_order, deps, settings):
    order, session_id = open_order()
    event = completed_event(order["orderId"], session_id, amount="149.00", currency="jpy")
    result = post_event(client, webhook_secret(settings, "stripe_1"), event)
    assert result.json["status"] == "rejected" and "currency JPY is not USD" in stored_event(deps, event["id"]).note
    untouched(deps, order["orderId"])


def test_an_invented_session_creates_no_payment(client, admin_headers, open_order, deps, settings):
    order, _ = open_order()
    event = completed_event(order["orderId"], new_id("cs_sbx"), amount="149.00")
    result = post_event(client, webhook_secret(settings, "stripe_1"), event)
    assert result.status_code == 200 and result.json["status"] == "rejected", result.text
    assert "does not know checkout session" in stored_event(deps, event["id"]).note
    untouched(deps, order["orderId"])


def test_a_session_of_another_order_cannot_pay_this_one(client, admin_headers, open_order, deps, settings):
    cheap, cheap_session = open_order("1.00")
    dear, _ = open_order("149.00")
    silent_sandbox(settings, deps).pay_hosted(cheap_session)  # 1.00 really paid, for the cheap order
    event = completed_event(dear["orderId"], cheap_session, amount="1.00")
    result = post_event(client, webhook_secret(settings, "stripe_1"), event)
    assert result.json["status"] == "rejected" and "belongs to another order" in stored_event(deps, event["id"]).note
    untouched(deps, dear["orderId"])


def test_an_event_through_another_gateway_cannot_pay_an_order(client, admin_headers, open_order, deps, settings):
    """The session was opened at ``stripe_1``; the same event signed by the ``sandbox`` gateway
    (another gateway's endpoint and secret) names a session that gateway never opened."""
    order, session_id = open_order()
    silent_sandbox(settings, deps).pay_hosted(session_id)
    event = completed_event(order["orderId"], session_id, amount="149.00")
    result = post_event(client, webhook_secret(settings, "sandbox"), event, gateway_id="sandbox")
    assert result.json["status"] == "rejected", result.text
    current = order_row(deps.db, order["orderId"])
    assert (current.status, current.payment_status) == ("pending_payment", "unpaid")
    assert [p.gateway_id for p in payments_of(deps.db, order["orderId"], checkout=True)] == ["stripe_1"]


# -- 3. never charged twice ---------------------------------------------------------------------------


def test_a_direct_payment_expires_the_hosted_checkout(client, admin_headers, open_order, deps, worker):
    order, session_id = open_order("20.00")
    paid = client.simulate_post(
        "/api/orders/payment", json=brief_payment(order["orderId"], amount=20.00), headers={**admin_headers, **WAIT}
    )
    assert paid.status_code == 200 and paid.json["paymentStatus"] == "completed", paid.text

    def closed() -> bool:
        with deps.db.reader() as session:
            return session.get(SandboxLedgerEntry, session_id).status == "expired"

    wait_for(closed, timeout=20, what="the hosted checkout to be expired")

    def checkout_row() -> Payment | None:  # the close task records it in the transaction after expiring it
        [row] = [p for p in payments_of(deps.db, order["orderId"], checkout=True) if p.action == "checkout"]
        return row if row.state != "pending" else None

    checkout = wait_for(checkout_row, timeout=20, what="the checkout payment to be closed")
    assert checkout.state == "failed" and checkout.error["code"] == "CHECKOUT_CLOSED"
    # The customer's Pay button no longer charges.
    page = urlsplit(order_row(deps.db, order["orderId"]).checkout_url).path
    pressed = client.simulate_post(f"{page}/pay")
    assert pressed.status_code == 303 and "declined=1" in pressed.headers["location"]
    assert len(sandbox_charges(deps.db, order["orderId"])) == 1


def test_a_second_charge_that_lands_is_refunded_at_once(client, admin_headers, open_order, deps, settings, worker):
    """The customer pays the hosted page (its webhook not yet arrived) while a direct payment of the
    same order succeeds: 40.00 captured on a 20.00 order, so the second capture is refunded."""
    order, session_id = open_order("20.00")
    silent_sandbox(settings, deps).pay_hosted(session_id)  # charged at the gateway; no event yet
    paid = client.simulate_post(
        "/api/orders/payment", json=brief_payment(order["orderId"], amount=20.00), headers={**admin_headers, **WAIT}
    )
    assert paid.status_code == 200, paid.text

    def refunded() -> list[SandboxLedgerEntry]:
        return ledger(deps, order["orderId"], "refund")

    [refund] = wait_for(refunded, timeout=30, what="the duplicate charge's refund")
    charges = ledger(deps, order["orderId"], "charge")
    assert sorted(c.amount for c in charges) == [Decimal("20.00"), Decimal("20.00")]
    hosted_charge = next(c for c in charges if c.token == "tok_visa" and c.idempotency_key.startswith(session_id))
    assert (refund.parent_id, refund.amount) == (hosted_charge.id, Decimal("20.00"))
    current = order_row(deps.db, order["orderId"])
    assert (current.status, current.payment_status) == ("processing", "completed")  # one payment stands
    [checkout] = [p for p in payments_of(deps.db, order["orderId"], checkout=True) if p.action == "checkout"]
    assert checkout.state == "succeeded" and checkout.error["code"] == "DUPLICATE_PAYMENT"
    assert history_of(deps.db, order["orderId"]).count(("pending_payment", "processing")) == 1


def test_cancelling_voids_the_authorization_and_capture_is_refused(client, admin_headers, open_order, deps, worker):
    order, session_id = open_order("30.00")
    body = brief_payment(order["orderId"], amount=30.00, action="authorize")
    authorized = client.simulate_post("/api/orders/payment", json=body, headers={**admin_headers, **WAIT})
    assert authorized.status_code == 200 and authorized.json["paymentStatus"] == "authorized", authorized.text
    cancelled = client.simulate_patch(
        f"/api/orders/{order['orderId']}/status", json={"status": "cancelled", "reason": "test"}, headers=admin_headers
    )
    assert cancelled.status_code == 200, cancelled.text
    wait_for(
        lambda: order_row(deps.db, order["orderId"]).payment_status == "voided",
        timeout=20,
        what="the authorization to be voided",
    )
    [charge] = sandbox_charges(deps.db, order["orderId"])
    assert charge.status == "voided"
    with deps.db.reader() as session:
        assert session.get(SandboxLedgerEntry, session_id).status == "expired"
    capture = client.simulate_post(
        "/api/orders/payment",
        json=brief_payment(order["orderId"], amount=30.00, action="capture"),
        headers={**admin_headers, **WAIT},
    )
    assert capture.status_code == 400 and error_code(capture) == "INVALID_STATUS", capture.text
    assert [p.action for p in payments_of(deps.db, order["orderId"])] == ["authorize", "void"]


def test_a_capture_queued_before_the_cancellation_never_reaches_the_gateway(client, admin_headers, open_order, deps):
    order, _ = open_order("30.00")
    with deps.db.transaction() as session:  # authorized at the gateway earlier
        row = session.get(Order, order["orderId"])
        row.payment_status = "authorized"
        session.add(
            Payment(
                id=new_id("txn"),
                order_id=row.id,
                gateway_id="stripe_1",
                action="authorize",
                amount=Decimal("30.00"),
                currency="USD",
                state="succeeded",
                gateway_transaction_id="pi_sbx_fake",
                idempotency_key=new_id("key"),
                attempts=1,
            )
        )
    queued = request_payment(deps.db, SYSTEM, PaymentRequest(order["orderId"], "capture", "credit_card", None, None))
    change_status(deps.db, SYSTEM, order["orderId"], "cancelled", reason="test")
    with pytest.raises(Exception) as refused:
        execute_payment(deps.db, deps.gateways, {"transactionId": queued.transaction_id})
    assert getattr(refused.value, "code", None) == "INVALID_STATUS"
    [capture] = [p for p in payments_of(deps.db, order["orderId"]) if p.action == "capture"]
    assert capture.state == "failed" and capture.attempts == 0


# -- 4. transitions respect payment ------------------------------------------------------------------


def test_an_unpaid_processing_order_cannot_ship(client, admin_headers, open_order, deps):
    order, _ = open_order()
    with deps.db.transaction() as session:  # as rows written before payments were enforced
        session.get(Order, order["orderId"]).status = "processing"
    result = client.simulate_patch(
        f"/api/orders/{order['orderId']}/status", json={"status": "shipped", "reason": "t"}, headers=admin_headers
    )
    assert result.status_code == 400 and error_code(result) == "INVALID_STATUS", result.text
    assert result.json["error"]["details"][0]["paymentStatus"] == "unpaid"
    assert order_row(deps.db, order["orderId"]).status == "processing"


def test_a_fully_refunded_order_cannot_ship(client, admin_headers, open_order, deps, worker):
    order, _ = open_order("20.00")
    paid = client.simulate_post(
        "/api/orders/payment", json=brief_payment(order["orderId"], amount=20.00), headers={**admin_headers, **WAIT}
    )
    assert paid.status_code == 200, paid.text
    refund = client.simulate_post(
        "/api/orders/payment",
        json=brief_payment(order["orderId"], amount=20.00, action="refund"),
        headers={**admin_headers, **WAIT},
    )
    assert refund.status_code == 200 and refund.json["paymentStatus"] == "refunded", refund.text
    shipped = client.simulate_patch(
        f"/api/orders/{order['orderId']}/status", json={"status": "shipped", "reason": "t"}, headers=admin_headers
    )
    assert shipped.status_code == 400 and error_code(shipped) == "INVALID_STATUS", shipped.text
    with deps.db.reader() as session:
        rows = session.scalars(select(StatusHistory.to_status).where(StatusHistory.order_id == order["orderId"]))
        assert "shipped" not in list(rows)


def test_staff_marking_an_order_processing_records_a_manual_payment(client, admin_headers, open_order, deps, worker):
    order, session_id = open_order("20.00")
    result = client.simulate_patch(
        f"/api/orders/{order['orderId']}/status",
        json={"status": "processing", "reason": "Payment confirmed"},
        headers=admin_headers,
    )
    assert result.status_code == 200, result.text
    current = order_row(deps.db, order["orderId"])
    assert (current.status, current.payment_status) == ("processing", "completed")
    [manual] = [p for p in payments_of(deps.db, order["orderId"]) if p.action == "manual"]
    assert (manual.state, manual.amount, manual.gateway_transaction_id) == ("succeeded", Decimal("20.00"), None)
    wait_for(
        lambda: silent_sandbox_state(deps, session_id) == "expired", timeout=20, what="the hosted checkout to close"
    )
    # Cancelling it gives the money back the way it came: recorded, with no gateway call.
    cancelled = client.simulate_patch(
        f"/api/orders/{order['orderId']}/status", json={"status": "cancelled", "reason": "t"}, headers=admin_headers
    )
    assert cancelled.status_code == 200, cancelled.text
    assert order_row(deps.db, order["orderId"]).payment_status == "refunded"
    refunds = [p for p in payments_of(deps.db, order["orderId"]) if p.action == "refund"]
    assert [(p.method, p.state, p.amount) for p in refunds] == [("manual", "succeeded", Decimal("20.00"))]
    assert sandbox_charges(deps.db, order["orderId"]) == []


def silent_sandbox_state(deps, session_id: str) -> str:
    with deps.db.reader() as session:
        return session.get(SandboxLedgerEntry, session_id).status


def test_an_authorized_order_is_not_marked_paid_by_hand(client, admin_headers, open_order, deps, worker):
    order, _ = open_order("30.00")
    body = brief_payment(order["orderId"], amount=30.00, action="authorize")
    assert client.simulate_post("/api/orders/payment", json=body, headers={**admin_headers, **WAIT}).status_code == 200
    result = client.simulate_patch(
        f"/api/orders/{order['orderId']}/status", json={"status": "processing", "reason": "t"}, headers=admin_headers
    )
    assert result.status_code == 400 and error_code(result) == "INVALID_STATUS", result.text
    assert [p.action for p in payments_of(deps.db, order["orderId"])] == ["authorize"]
    assert order_row(deps.db, order["orderId"]).status == "pending_payment"


# -- 7. the hosted page needs its own secret ---------------------------------------------------------


def test_decline_and_pay_need_the_sessions_own_secret(client, admin_headers, open_order, deps):
    order, session_id = open_order()
    page = urlsplit(order_row(deps.db, order["orderId"]).checkout_url).path
    assert page.endswith(f"/{session_id}")
    for guessed in (f"/sandbox/checkout/{session_id}", f"/sandbox/checkout/wrong-key-0123456789/{session_id}"):
        assert client.simulate_get(guessed).status_code == 404
        for decision in ("decline", "pay"):
            pressed = client.simulate_post(f"{guessed}/{decision}")
            assert pressed.status_code in (404, 405) and pressed.json["error"]["code"] != "", pressed.text
    assert order_row(deps.db, order["orderId"]).payment_status == "unpaid"
    assert silent_sandbox_state(deps, session_id) == "open"
    with deps.db.reader() as session:
        attempts = session.scalars(
            select(SandboxLedgerEntry).where(
                SandboxLedgerEntry.reference == order["orderId"], SandboxLedgerEntry.kind == "charge"
            )
        ).all()
    assert attempts == []
    assert client.simulate_get(page).status_code == 200  # the genuine link still opens
