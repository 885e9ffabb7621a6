"""Pure pieces of the payment work: the Prefer header, webhook signatures, Stripe-shaped events."""

from __future__ import annotations

from decimal import Decimal

import pytest

from api.async_answer import MAX_WAIT_SECONDS, preferred_wait
from services.payments.gateways.base import CHECKOUT_COMPLETED, OTHER, PAYMENT_FAILED, WebhookSignatureError
from services.payments.gateways.events import normalize, to_minor
from services.payments.gateways.signing import sign, verify


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("wait=5", 5),
        ("respond-async, wait=10", 10),
        ('WAIT="7"', 7),
        ("wait=600", MAX_WAIT_SECONDS),
        ("wait=abc", None),
        ("return=minimal", None),
        ("wait=3;foo=bar", 3),
    ],
)
def test_prefer_wait_is_parsed_and_capped(header, expected):
    assert preferred_wait(header) == expected


def test_signatures_round_trip_and_refuse_tampering_and_age():
    body = b'{"id":"evt_1"}'
    header = sign(body, "secret", 1_000_000)
    assert header.startswith("t=1000000,v1=")
    assert verify(body, header, "secret", 300, now=1_000_100) == 1_000_000
    for bad_body, bad_header, secret, now in [
        (b'{"id":"evt_2"}', header, "secret", 1_000_100),
        (body, header, "other", 1_000_100),
        (body, header, "secret", 1_000_301),
        (body, None, "secret", 1_000_100),
        (body, "v1=abc", "secret", 1_000_100),
    ]:
        with pytest.raises(WebhookSignatureError):
            verify(bad_body, bad_header, secret, 300, now=now)


def test_stripe_shaped_events_are_normalised():
    paid = normalize(
        {
            "id": "evt_1",
            "type": "checkout.session.completed",
            "data": {
                "object": {"id": "cs_1", "payment_status": "paid", "amount_total": 9999, "client_reference_id": "ord_1"}
            },
        }
    )
    assert (paid.kind, paid.order_id, paid.amount) == (CHECKOUT_COMPLETED, "ord_1", Decimal("99.99"))
    unpaid = normalize(
        {"id": "evt_2", "type": "checkout.session.completed", "data": {"object": {"payment_status": "unpaid"}}}
    )
    assert unpaid.kind == OTHER
    failed = normalize(
        {
            "id": "evt_3",
            "type": "payment_intent.payment_failed",
            "data": {"object": {"id": "pi_1", "last_payment_error": {"decline_code": "insufficient_funds"}}},
        }
    )
    assert (failed.kind, failed.reason, failed.transaction_id) == (PAYMENT_FAILED, "insufficient_funds", "pi_1")
    assert to_minor(Decimal("0.10")) * 3 == 30
