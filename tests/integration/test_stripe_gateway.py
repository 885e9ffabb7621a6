"""The stripe adapter's real SDK requests against the local Stripe stand-in."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import stripe

from services.payments.gateways.base import (
    CHECKOUT_COMPLETED,
    GatewayDeclined,
    GatewayTimeout,
    GatewayUnavailable,
    SettlementUnsupported,
)
from services.payments.gateways.signing import sign
from services.payments.gateways.stripe_gateway import StripeGateway
from tests.conftest import STRIPE_WEBHOOK_SECRET
from tests.integration.helpers import brief_payment, order_row, place, wait_task
from tests.support.polling import wait_for


@pytest.fixture
def gateway(stripe_standin) -> StripeGateway:
    return StripeGateway(
        "stripe_test",
        api_key="sk_test_standin",
        webhook_secret=STRIPE_WEBHOOK_SECRET,
        api_base=stripe_standin.url,
        timeout_seconds=0.5,
    )


def charge(gateway, token="tok_visa", key="k", capture=True, amount="12.34"):
    return gateway.charge(
        amount=Decimal(amount),
        currency="USD",
        token=token,
        capture=capture,
        idempotency_key=key,
        metadata={"orderId": key},
    )


def test_a_charge_is_a_confirmed_payment_intent_in_stripes_wire_format(gateway, stripe_standin):
    result = charge(gateway, key="charge-1")
    assert (
        result.status == "succeeded" and result.transaction_id.startswith("pi_") and result.amount == Decimal("12.34")
    )
    request = stripe_standin.requests[-1]
    assert (request["method"], request["path"]) == ("POST", "/v1/payment_intents")
    assert request["headers"]["idempotency-key"] == "charge-1"
    assert request["headers"]["authorization"] == "Bearer sk_test_standin"
    assert request["headers"]["content-type"].startswith("application/x-www-form-urlencoded")
    form = request["form"]
    assert (form["amount"], form["currency"], form["confirm"]) == ("1234", "usd", "true")
    assert form["payment_method_data"]["card"]["token"] == "tok_visa" and form["metadata"] == {"orderId": "charge-1"}


def test_the_same_idempotency_key_reaches_the_same_payment_intent(gateway, stripe_standin):
    first, second = charge(gateway, key="twice"), charge(gateway, key="twice")
    assert first.transaction_id == second.transaction_id
    assert len(stripe_standin.intents_created("twice")) == 1


@pytest.mark.parametrize(
    ("token", "reason"), [("tok_chargeDeclined", "generic_decline"), ("tok_insufficientFunds", "insufficient_funds")]
)
def test_card_errors_are_declines_with_the_reason(gateway, token, reason):
    with pytest.raises(GatewayDeclined) as declined:
        charge(gateway, token=token, key=f"declined-{token}")
    assert declined.value.reason == reason and declined.value.transaction_id.startswith("pi_")


def test_server_errors_are_transient_and_silence_is_a_timeout(gateway):
    with pytest.raises(GatewayUnavailable):
        charge(gateway, token="tok_gatewayUnavailable", key="unavailable")
    with pytest.raises(GatewayTimeout):
        charge(gateway, token="tok_timeout", key="timeout")


def test_authorize_capture_refund_and_void(gateway, stripe_standin):
    authorized = charge(gateway, key="auth-1", capture=False, amount="50.00")
    assert authorized.status == "authorized"
    captured = gateway.capture(authorized.transaction_id, amount=Decimal("50.00"), idempotency_key="cap-1")
    assert captured.status == "succeeded" and stripe_standin.requests[-1]["form"] == {"amount_to_capture": "5000"}
    refund = gateway.refund(authorized.transaction_id, amount=Decimal("20.00"), idempotency_key="ref-1")
    assert refund.refund_id.startswith("re_") and refund.amount == Decimal("20.00")
    assert gateway.refund(authorized.transaction_id, amount=Decimal("20.00"), idempotency_key="ref-1") == refund
    with pytest.raises(GatewayDeclined) as too_much:
        gateway.refund(authorized.transaction_id, amount=Decimal("30.01"), idempotency_key="ref-2")
    assert too_much.value.reason == "amount_too_large"
    other = charge(gateway, key="auth-2", capture=False)
    gateway.void(other.transaction_id, idempotency_key="void-1")
    assert stripe_standin.intents[other.transaction_id]["status"] == "canceled"


def test_checkout_sessions_open_and_report_payment(gateway, stripe_standin):
    opened = gateway.create_checkout_session(
        amount=Decimal("99.99"),
        currency="USD",
        order_id="ord_x",
        success_url="https://shop.example/ok?session_id={CHECKOUT_SESSION_ID}",
        cancel_url="https://shop.example/cancel",
        expires_at=datetime.now(UTC) + timedelta(minutes=30),
        idempotency_key="checkout:ord_x",
    )
    assert opened.id.startswith("cs_test_") and opened.url.startswith(stripe_standin.url)
    form = stripe_standin.requests[-1]["form"]
    assert form["line_items"]["0"]["price_data"]["unit_amount"] == "9999" and form["mode"] == "payment"
    assert gateway.retrieve_checkout_session(opened.id).paid is False
    stripe_standin.complete_session(opened.id)
    state = gateway.retrieve_checkout_session(opened.id)
    assert (state.paid, state.order_id, state.amount) == (True, "ord_x", Decimal("99.99"))
    assert state.transaction_id.startswith("pi_")


def test_webhook_signatures_are_checked_by_the_sdk(gateway, stripe_standin):
    event = {
        "id": "evt_1",
        "object": "event",
        "type": "checkout.session.completed",
        "data": {
            "object": {"id": "cs_1", "payment_status": "paid", "metadata": {"orderId": "ord_1"}, "amount_total": 500}
        },
    }
    body = json.dumps(event).encode()
    parsed = gateway.parse_webhook(body, sign(body, STRIPE_WEBHOOK_SECRET))
    assert (parsed.kind, parsed.order_id, parsed.checkout_session_id, parsed.amount) == (
        CHECKOUT_COMPLETED,
        "ord_1",
        "cs_1",
        Decimal("5.00"),
    )
    # Our signer and Stripe's verifier agree on the scheme (the sandbox signs the same way).
    stripe.WebhookSignature.verify_header(body.decode(), sign(body, "whsec_x"), "whsec_x", 300)
    from services.payments.gateways.base import WebhookSignatureError

    for header in (sign(body, "whsec_forged"), None, sign(body, STRIPE_WEBHOOK_SECRET, int(time.time()) - 400)):
        with pytest.raises(WebhookSignatureError):
            gateway.parse_webhook(body, header)


def test_payment_and_checkout_through_the_api_with_the_stripe_adapter(
    client, admin_headers, make_offer, deps, stripe_standin, worker
):
    order = place(client, admin_headers, make_offer(), gateway="stripe_test")
    result = client.simulate_post(
        "/api/orders/payment", json=brief_payment(order["orderId"]), headers={**admin_headers, "Prefer": "wait=20"}
    )
    assert result.status_code == 200 and result.json["paymentStatus"] == "completed", result.text
    [intent] = stripe_standin.intents_created(order["orderId"])
    assert intent["status"] == "succeeded" and intent["metadata"]["paymentId"] == result.json["transactionId"]

    # Hosted checkout: the session opens at the stand-in and its signed webhook pays the order.
    other = place(client, admin_headers, make_offer(), gateway="stripe_test")
    assert wait_task(client, other["taskId"], admin_headers)["state"] == "succeeded"
    location = client.simulate_get(f"/api/orders/{other['orderId']}/checkout").headers["location"]
    session_id = location.rsplit("/", 1)[1]
    assert location.startswith(stripe_standin.url) and session_id.startswith("cs_test_")
    event = stripe_standin.complete_session(session_id)
    body = json.dumps(event).encode()
    headers = {"Stripe-Signature": sign(body, STRIPE_WEBHOOK_SECRET), "Content-Type": "application/json"}
    forged = client.simulate_post(
        "/api/payments/webhooks/stripe_test", body=body, headers={"Stripe-Signature": "t=1,v1=0"}
    )
    assert forged.status_code == 400
    hook = client.simulate_post("/api/payments/webhooks/stripe_test", body=body, headers=headers)
    assert hook.status_code == 200 and hook.json["status"] == "applied", hook.text
    wait_for(lambda: order_row(deps.db, other["orderId"]).status == "processing", what="the stripe webhook")


def _session(gateway, order_id):
    return gateway.create_checkout_session(
        amount=Decimal("10.00"),
        currency="USD",
        order_id=order_id,
        success_url="https://shop.example/ok",
        cancel_url="https://shop.example/cancel",
        expires_at=datetime.now(UTC) + timedelta(minutes=30),
        idempotency_key=f"checkout:{order_id}",
    )


def test_expiring_a_checkout_session_calls_stripes_expire_and_keeps_a_paid_one_paid(gateway, stripe_standin):
    unpaid, paid = _session(gateway, "ord_expire_1"), _session(gateway, "ord_expire_2")
    expired = gateway.expire_checkout(unpaid.id)
    assert (expired.status, expired.paid) == ("expired", False)
    request = stripe_standin.requests[-1]
    assert (request["method"], request["path"]) == ("POST", f"/v1/checkout/sessions/{unpaid.id}/expire")
    assert gateway.expire_checkout(unpaid.id).status == "expired"  # Stripe refuses a second expire: asked instead

    stripe_standin.complete_session(paid.id)
    state = gateway.expire_checkout(paid.id)
    assert (state.status, state.paid) == ("complete", True) and state.transaction_id.startswith("pi_")


def test_the_stripe_adapter_says_it_cannot_list_its_ledger(gateway):
    with pytest.raises(SettlementUnsupported, match="not supported for the stripe adapter"):
        gateway.settlement_entries(datetime.now(UTC) - timedelta(days=1), datetime.now(UTC))
