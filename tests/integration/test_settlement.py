"""The settlement job compares a gateway's day of captures and refunds with the payments table:
a clean day is all matched; an altered, a deleted and an unknown ledger entry are each reported.

The job runs in the session's real worker (the task is sent as beat sends it, with the day to
settle). The test's payments are moved to a day of their own so other tests' payments never mix in.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import delete, update

from models import Payment, SandboxLedgerEntry
from models.ids import new_id
from services.kernel.principal import SYSTEM
from services.payments.settlement import compare, list_reports
from tests.conftest import auth
from tests.integration.helpers import brief_payment, error_code, payments_of, place, wait_task
from tests.support.polling import wait_for
from workers.app import create_celery_app

DAY = date(2001, 2, 3)
NOON = datetime(2001, 2, 3, 12, 0, tzinfo=UTC)


def pay(client, headers, body) -> dict:
    result = client.simulate_post("/api/orders/payment", json=body, headers={**headers, "Prefer": "wait=20"})
    assert result.status_code == 200, result.text
    return result.json


def settle(settings, deps, client, headers, gateway_id: str = "stripe_1") -> dict:
    """Send the settlement task for DAY, as beat does, and wait for its report to be (re)written."""

    def stored():
        found = list_reports(deps.db, SYSTEM, day=DAY, gateway_id=gateway_id)
        return found[0].created_at if found else None

    before = stored()
    create_celery_app(settings).send_task(
        "maintenance.settle_payments", kwargs={"day": DAY.isoformat()}, queue="maintenance"
    )
    wait_for(lambda: stored() not in (None, before), timeout=20, what="the settlement report")
    return reports(client, headers, gateway_id)[0]


def reports(client, headers, gateway_id: str) -> list[dict]:
    result = client.simulate_get(
        "/api/reconciliation/reports", params={"date": DAY.isoformat(), "gatewayId": gateway_id}, headers=headers
    )
    assert result.status_code == 200, result.text
    return result.json["value"]


def test_a_clean_day_matches_and_injected_differences_are_reported(
    client, admin_headers, make_offer, make_key, deps, settings, worker
):
    first = place(client, admin_headers, make_offer("20.00"), price=20.00)
    second = place(client, admin_headers, make_offer("35.50"), price=35.50)
    pay(client, admin_headers, brief_payment(first["orderId"], amount=20.00))
    pay(client, admin_headers, brief_payment(second["orderId"], amount=35.50))
    pay(client, admin_headers, {"orderId": first["orderId"], "action": "refund"})
    payments = payments_of(deps.db, first["orderId"]) + payments_of(deps.db, second["orderId"])
    assert [p.state for p in payments] == ["succeeded"] * 3
    charge_one, refund, charge_two = (p.gateway_transaction_id for p in payments)

    # Both sides of these three movements happened on DAY, around noon.
    with deps.db.transaction() as session:
        session.execute(
            update(Payment).where(Payment.id.in_([p.id for p in payments])).values(updated_at=NOON, created_at=NOON)
        )
        ledger = (charge_one, refund, charge_two)
        session.execute(
            update(SandboxLedgerEntry).where(SandboxLedgerEntry.id.in_(ledger)).values(updated_at=NOON, created_at=NOON)
        )

    clean = settle(settings, deps, client, admin_headers)
    assert clean["matchedCount"] == 3, clean
    assert (clean["missingInGateway"], clean["missingInDb"], clean["amountMismatches"]) == ([], [], [])
    assert reports(client, admin_headers, "sandbox")[0]["matchedCount"] == 0  # another gateway, nothing that day

    # The gateway booked one capture for another amount, lost a refund, and holds a charge we never recorded.
    with deps.db.transaction() as session:
        session.execute(
            update(SandboxLedgerEntry).where(SandboxLedgerEntry.id == charge_two).values(amount=Decimal("35.05"))
        )
        session.execute(delete(SandboxLedgerEntry).where(SandboxLedgerEntry.id == refund))
        unknown = new_id("pi_sbx")
        session.add(
            SandboxLedgerEntry(
                id=unknown,
                gateway_id="stripe_1",
                kind="charge",
                status="succeeded",
                idempotency_key=f"settlement-test:{unknown}",
                amount=Decimal("12.34"),
                currency="USD",
                created_at=NOON + timedelta(hours=11),
                updated_at=NOON + timedelta(hours=11),
                data={},
            )
        )

    found = settle(settings, deps, client, admin_headers)
    assert found["id"] == clean["id"]  # settling the day again replaces its report
    assert found["matchedCount"] == 1
    assert found["amountMismatches"] == [
        {"id": charge_two, "kind": "capture", "gatewayAmount": 35.05, "dbAmount": 35.50}
    ]
    assert found["missingInGateway"] == [{"id": refund, "kind": "refund", "amount": 20.00}]
    assert found["missingInDb"] == [{"id": unknown, "kind": "capture", "amount": 12.34}]
    assert len(reports(client, admin_headers, "stripe_1")) == 1

    customer = client.simulate_get("/api/reconciliation/reports", headers=auth(make_key("customer", "cust_x")))
    assert customer.status_code == 403 and error_code(customer) == "FORBIDDEN"
    ops = client.simulate_get("/api/reconciliation/reports", headers=auth(make_key("ops")))
    assert ops.status_code == 200 and any(r["date"] == DAY.isoformat() for r in ops.json["value"])
    bad = client.simulate_get("/api/reconciliation/reports", params={"date": "2001-02-30"}, headers=admin_headers)
    assert bad.status_code == 400 and error_code(bad) == "VALIDATION_ERROR"
    doc = client.simulate_get("/api/openapi.json").json
    assert "/api/reconciliation/reports" in doc["paths"]
    assert reports(client, admin_headers, "stripe_test") == []  # the stripe adapter cannot list its ledger


def test_an_entry_just_across_midnight_is_matched_not_missing():
    key = ("capture", "pi_1")
    day_side = {key: Decimal("10.00")}
    # The gateway booked it at 23:59:59 on the day, we confirmed it at 00:00:01 the next day.
    assert compare(day_side, day_side, {}, day_side) == (1, [], [], [])
    assert compare({}, day_side, day_side, day_side) == (1, [], [], [])
    assert compare(day_side, day_side, {}, {}) == (0, [], [{"id": "pi_1", "kind": "capture", "amount": "10.00"}], [])


def test_payments_recorded_outside_the_gateway_are_counted_apart_not_as_differences(
    client, admin_headers, make_offer, deps, settings, worker
):
    """Staff confirming an unpaid order ("Payment confirmed") records a manual payment; cancelling
    it records a manual refund. Neither reached the gateway, so neither is missing there."""
    order = place(client, admin_headers, make_offer("20.00"), gateway="sandbox", price=20.00)
    assert wait_task(client, order["taskId"], admin_headers)["state"] == "succeeded"
    path = f"/api/orders/{order['orderId']}/status"
    for status in ("processing", "cancelled"):
        changed = client.simulate_patch(
            path, json={"status": status, "reason": "Payment confirmed"}, headers=admin_headers
        )
        assert changed.status_code == 200, changed.text
    manual = [p for p in payments_of(deps.db, order["orderId"]) if p.method == "manual"]
    assert [(p.action, p.amount) for p in manual] == [("manual", Decimal("20.00")), ("refund", Decimal("20.00"))]
    with deps.db.transaction() as session:
        session.execute(update(Payment).where(Payment.id.in_([p.id for p in manual])).values(updated_at=NOON))

    report = settle(settings, deps, client, admin_headers, gateway_id="sandbox")
    assert (report["manualCount"], report["manualTotal"]) == (1, 20.00), report
    assert (report["manualRefundCount"], report["manualRefundTotal"]) == (1, 20.00), report
    assert (report["missingInGateway"], report["missingInDb"], report["amountMismatches"]) == ([], [], [])
    stripe_1 = reports(client, admin_headers, "stripe_1")
    assert all(r["manualCount"] == 0 for r in stripe_1)  # another gateway's day
