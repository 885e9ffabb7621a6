"""The reconciliation beat jobs, fired by a real beat (short intervals) and run by the session's
real worker: a checkout paid without its webhook is settled, an unpaid order is cancelled at its
window with its stock back and its checkout closed, and the settlement job stores a report.

Only one beat may run per Redis, so this module starts one for its own tests and stops it after.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from falcon import testing
from sqlalchemy import select, update

from api.app import create_app
from models import Payment, SandboxLedgerEntry, StatusHistory
from models.types import utcnow
from services.kernel.principal import SYSTEM
from services.payments.gateways.base import GatewayDeclined
from services.payments.gateways.registry import Gateways
from services.payments.settlement import list_reports, previous_day
from tests.integration.helpers import order_row, payments_of, place, wait_task
from tests.support.polling import wait_for
from tests.support.processes import start_beat, stop_process


@pytest.fixture(scope="module")
def beat(settings, worker, run_dir) -> Iterator[None]:
    """A beat on the session's Redis firing every maintenance job every second or two."""
    fast = settings.with_(
        reconcile_interval_seconds=1,
        expire_orders_interval_seconds=1,
        settlement_interval_seconds=2,
        housekeeping_interval_seconds=2,
    )
    process = start_beat(fast, run_dir / "beat-jobs.log")
    yield
    stop_process(process)


def silent_sandbox(settings, deps, gateway_id: str = "stripe_1"):
    """The sandbox gateway behind ``gateway_id`` with its webhooks dropped (the lost webhook)."""
    return Gateways(settings, deps.db, deliver=lambda url, body, headers: None).sandbox(gateway_id)


def checkout_session_of(client, deps, headers, order) -> str:
    assert wait_task(client, order["taskId"], headers)["state"] == "succeeded"
    [checkout] = payments_of(deps.db, order["orderId"], checkout=True)
    return checkout.checkout_session_id


def history_rows(db, order_id: str) -> list[StatusHistory]:
    with db.reader() as session:
        return list(
            session.scalars(select(StatusHistory).where(StatusHistory.order_id == order_id).order_by(StatusHistory.id))
        )


def test_a_checkout_paid_without_its_webhook_is_settled_by_the_pending_payments_job(
    client, admin_headers, make_offer, deps, settings, beat
):
    offer = make_offer(stock=4)
    order = place(client, admin_headers, offer)
    session_id = checkout_session_of(client, deps, admin_headers, order)
    silent_sandbox(settings, deps).pay_hosted(session_id)  # paid at the gateway; no webhook is sent
    assert order_row(deps.db, order["orderId"]).status == "pending_payment"

    # Left pending longer than the grace period (the worker's RECONCILE_AFTER_SECONDS).
    with deps.db.transaction() as session:
        session.execute(
            update(Payment)
            .where(Payment.order_id == order["orderId"])
            .values(updated_at=utcnow() - timedelta(seconds=settings.reconcile_after_seconds + 5))
        )

    current = wait_for(
        lambda: (row := order_row(deps.db, order["orderId"])).status == "processing" and row,
        timeout=20,
        what="the reconciliation job to confirm the payment",
    )
    assert current.payment_status == "completed"
    [checkout] = payments_of(deps.db, order["orderId"], checkout=True)
    assert checkout.state == "succeeded" and checkout.gateway_transaction_id.startswith("pi_sbx")
    last = history_rows(deps.db, order["orderId"])[-1]
    assert (last.to_status, last.reason) == ("processing", "payment confirmed by reconciliation with the gateway")
    stock = client.simulate_get(f"/api/offers/{offer}", headers=admin_headers).json
    assert (stock["stockAvailable"], stock["stockReserved"]) == (3, 0)  # the hold was committed


def test_an_unpaid_order_is_cancelled_at_its_window_with_stock_back_and_checkout_closed(
    admin_headers, make_offer, deps, settings, beat
):
    short = settings.with_(payment_window_seconds=2)
    client = testing.TestClient(create_app(short, dataclasses.replace(deps, settings=short)))
    offer = make_offer(stock=5)
    order = place(client, admin_headers, offer, quantity=2, price=99.99)
    assert client.simulate_get(f"/api/offers/{offer}", headers=admin_headers).json["stockReserved"] == 2
    session_id = checkout_session_of(client, deps, admin_headers, order)

    current = wait_for(
        lambda: (row := order_row(deps.db, order["orderId"])).status == "cancelled" and row,
        timeout=20,
        what="the unpaid-orders job to cancel the order",
    )
    assert utcnow() >= current.hold_expires_at  # not before its window
    last = history_rows(deps.db, order["orderId"])[-1]
    assert (last.from_status, last.to_status, last.reason) == ("pending_payment", "cancelled", "payment_timeout")
    stock = client.simulate_get(f"/api/offers/{offer}", headers=admin_headers).json
    assert (stock["stockAvailable"], stock["stockReserved"]) == (5, 0)
    assert client.simulate_get(f"/api/orders/{order['orderId']}", headers=admin_headers).json["status"] == "cancelled"

    # The gateway's session is expired: its page shows no Pay button and paying is refused.
    with deps.db.reader() as session:
        assert session.get(SandboxLedgerEntry, session_id).status == "expired"
    page = client.simulate_get(urlsplit(order_row(deps.db, order["orderId"]).checkout_url).path)
    assert "id='closed'" in page.text and "id='pay'" not in page.text
    with pytest.raises(GatewayDeclined):
        silent_sandbox(settings, deps).pay_hosted(session_id)
    [checkout] = payments_of(deps.db, order["orderId"], checkout=True)
    assert checkout.state == "failed" and checkout.error["code"] == "CHECKOUT_EXPIRED"


def test_a_checkout_paid_just_before_its_window_closed_ends_processing_not_cancelled(
    admin_headers, make_offer, deps, settings, beat
):
    short = settings.with_(payment_window_seconds=2)
    client = testing.TestClient(create_app(short, dataclasses.replace(deps, settings=short)))
    offer = make_offer(stock=5)
    order = place(client, admin_headers, offer)
    session_id = checkout_session_of(client, deps, admin_headers, order)
    silent_sandbox(settings, deps).pay_hosted(session_id)  # the webhook is lost; the window then closes

    current = wait_for(
        lambda: (row := order_row(deps.db, order["orderId"])).status != "pending_payment" and row,
        timeout=20,
        what="the unpaid-orders job to settle the order",
    )
    assert (current.status, current.payment_status) == ("processing", "completed")
    assert [row.to_status for row in history_rows(deps.db, order["orderId"])][-1] == "processing"
    stock = client.simulate_get(f"/api/offers/{offer}", headers=admin_headers).json
    assert (stock["stockAvailable"], stock["stockReserved"]) == (4, 0)


def test_the_settlement_job_fires_on_its_interval_and_reports_the_previous_day(deps, beat):
    def report():
        found = list_reports(deps.db, SYSTEM, day=previous_day(), gateway_id="sandbox")
        return found[0] if found else None

    first = wait_for(report, timeout=20, what="the beat's settlement job to report yesterday")
    wait_for(lambda: report().created_at > first.created_at, timeout=20, what="the next run to replace the report")
    assert len(list_reports(deps.db, SYSTEM, day=previous_day(), gateway_id="sandbox")) == 1
