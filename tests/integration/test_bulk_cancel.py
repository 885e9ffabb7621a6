"""Bulk cancellation: limits, dry run, the fan-out through a real worker, exactly-once counting."""

from __future__ import annotations

import random
import time
from collections import Counter
from decimal import Decimal

from sqlalchemy import func, select

from models import Job, Offer, Order, Payment, SandboxLedgerEntry
from services.changes import bulk_cancel
from services.jobs.kinds import BULK_CANCEL, CANCEL_ORDER
from services.jobs.machine import claim_job, finish_job
from services.jobs.outbox import JobRef
from services.jobs.views import get_job
from services.kernel.errors import DomainError
from services.kernel.principal import SYSTEM
from tests.conftest import auth, unique_customer
from tests.integration.helpers import error_code, no_writes, wait_task
from tests.support.polling import wait_for
from tests.support.seed import seed_orders

CANCELLABLE = ("pending_payment", "processing")


def bulk(client, headers, order_ids, reason="Customer request", **params):
    return client.simulate_post(
        "/api/orders/bulk-cancel", json={"orderIds": order_ids, "reason": reason}, params=params, headers=headers
    )


def stock(client, headers, offer) -> tuple[int, int]:
    body = client.simulate_get(f"/api/offers/{offer}", headers=headers).json
    return body["stockAvailable"], body["stockReserved"]


def expected_outcome(status: str | None) -> str:
    if status is None:
        return "ORDER_NOT_FOUND"
    return "cancelled" if status in (*CANCELLABLE, "cancelled") else "INVALID_STATUS"


def outcome_of(result: dict) -> str:
    return result["status"] if "status" in result else result["error"]["code"]


def test_more_than_ten_thousand_ids_is_413(client, admin_headers):
    result = bulk(client, admin_headers, [f"ord_{i}" for i in range(10_001)])
    assert result.status_code == 413 and error_code(result) == "PAYLOAD_TOO_LARGE"
    assert result.json["error"]["details"] == [{"field": "orderIds", "maxItems": 10_000, "received": 10_001}]
    assert bulk(client, admin_headers, []).status_code == 400


def test_dry_run_reports_and_changes_nothing(client, admin_headers, make_offer, deps):
    offer = make_offer("5.00", stock=100)
    statuses = ["pending_payment", "processing", "shipped", "completed", "cancelled", "refunded"]
    ids = seed_orders(deps.db, offer_id=offer, price=Decimal("5.00"), statuses=statuses, customer_id=unique_customer())
    before = stock(client, admin_headers, offer)
    result = bulk(client, admin_headers, [*ids, "ord_missing"], dryRun="true")
    assert result.status_code == 200, result.text
    body = result.json
    assert body["dryRun"] is True and (body["cancelled"], body["failed"]) == (3, 4)
    assert [outcome_of(r) for r in body["results"]] == [
        "cancelled",
        "cancelled",
        "INVALID_STATUS",
        "INVALID_STATUS",
        "cancelled",
        "INVALID_STATUS",
        "ORDER_NOT_FOUND",
    ]
    assert body["results"][2]["error"]["details"][0]["currentStatus"] == "shipped"
    assert body["results"][0]["currentStatus"] == "pending_payment"
    assert stock(client, admin_headers, offer) == before
    with deps.db.reader() as session:
        assert [session.get(Order, i).status for i in ids] == statuses


def test_bulk_cancel_of_many_orders_with_two_worker_processes(
    client, admin_headers, make_offer, deps, worker, worker_log
):
    """500 ids (pending, paid, shipped, completed, cancelled, unknown): exact counts, one result per
    id in request order, stock restored for every cancelled order, a full refund in the sandbox
    ledger for every paid order cancelled, progress seen rising while the children run, and
    redelivered messages ignored."""
    rng = random.Random(4)
    offer = make_offer("3.00", stock=5000)
    statuses = rng.choices(
        ["pending_payment", "processing", "shipped", "completed", "cancelled"], weights=[45, 20, 10, 10, 10], k=475
    )
    ids = seed_orders(
        deps.db, offer_id=offer, price=Decimal("3.00"), statuses=statuses, customer_id=unique_customer(), quantity=2
    )
    # 20 of the pending orders are paid through the payments API first (sandbox gateway)
    paid = [order_id for order_id, status in zip(ids, statuses, strict=True) if status == "pending_payment"][:20]
    pay_tasks = [
        client.simulate_post(
            "/api/orders/payment",
            json={
                "orderId": order_id,
                "action": "process",
                "paymentDetails": {"method": "credit_card", "token": "tok_visa", "amount": 6.00},
            },
            headers=admin_headers,
        ).json["taskId"]
        for order_id in paid
    ]
    for task_id in pay_tasks:
        assert wait_task(client, task_id, admin_headers)["state"] == "succeeded"
    statuses = ["processing" if order_id in paid else s for order_id, s in zip(ids, statuses, strict=True)]
    status_of: dict[str, str | None] = dict(zip(ids, statuses, strict=True))
    unknown = [f"ord_unknown{i:04d}" for i in range(25)]
    request = ids + unknown
    rng.shuffle(request)
    for order_id in unknown:
        status_of[order_id] = None
    request.append(request[0])  # a repeated id is cancelled and reported once

    started = time.monotonic()
    accepted = bulk(client, admin_headers, request)
    assert accepted.status_code == 202, accepted.text
    task_id = accepted.json["taskId"]
    assert accepted.headers["location"] == f"/api/tasks/{task_id}"
    assert accepted.json["statusUrl"].endswith(f"/api/tasks/{task_id}")

    seen: list[int] = []

    def finished():
        task = client.simulate_get(f"/api/tasks/{task_id}", headers=admin_headers).json
        seen.append(task["progress"]["current"])
        assert task["progress"]["total"] == 500
        return task if task["state"] in ("succeeded", "failed") else None

    task = wait_for(finished, timeout=120, interval=0.05, what="the bulk cancel")
    elapsed = time.monotonic() - started
    assert task["state"] == "succeeded", task
    assert seen == sorted(seen), "progress never goes back"
    assert any(0 < current < 500 for current in seen), f"progress never seen between 0 and 500: {set(seen)}"
    assert task["progress"] == {"current": 500, "total": 500, "percent": 100.0}

    result = task["result"]
    expected = Counter(expected_outcome(status_of[i]) for i in request[:-1])
    assert [r["orderId"] for r in result["results"]] == request[:-1]
    assert Counter(outcome_of(r) for r in result["results"]) == expected
    assert result["cancelled"] == expected["cancelled"] and result["failed"] == 500 - expected["cancelled"]
    assert all(outcome_of(r) == expected_outcome(status_of[r["orderId"]]) for r in result["results"])

    sold = sum(1 for s in statuses if s in ("shipped", "completed")) * 2
    assert stock(client, admin_headers, offer) == (5000 - sold, 0)
    with deps.db.reader() as session:
        final = dict(session.execute(select(Order.id, Order.status).where(Order.id.in_(ids))).all())
        children = session.scalar(select(func.count()).select_from(Job).where(Job.parent_id == task_id))
    assert all(final[i] == ("cancelled" if s in CANCELLABLE else s) for i, s in zip(ids, statuses, strict=True))
    assert children == 500

    # every paid order cancelled was refunded in full at the gateway, once
    def refunds() -> list | None:
        with deps.db.reader() as session:
            rows = session.execute(
                select(SandboxLedgerEntry.reference, SandboxLedgerEntry.amount)
                .join(Payment, Payment.gateway_transaction_id == SandboxLedgerEntry.parent_id)
                .where(SandboxLedgerEntry.kind == "refund", Payment.order_id.in_(paid), Payment.action == "process")
            ).all()
        return rows if len(rows) >= len(paid) else None

    booked = wait_for(refunds, timeout=60, what="the refunds of the paid orders")
    assert len(booked) == 20 and all(amount == Decimal("6.00") for _, amount in booked)

    # The sandbox books a refund in its own statement, a moment before the refund task commits
    # what it did to the order: wait for the orders too.
    def payment_statuses() -> set[str] | None:
        with deps.db.reader() as session:
            found = set(session.scalars(select(Order.payment_status).where(Order.id.in_(paid))).all())
        return found if found == {"refunded"} else None

    assert wait_for(payment_statuses, timeout=30, what="the paid orders to read refunded") == {"refunded"}
    print(f"bulk cancel of 500 ids through the worker: {elapsed:.2f}s")

    # redelivered messages (a child's and the parent's) change nothing
    with deps.db.reader() as session:
        child = session.scalar(select(Job.id).where(Job.parent_id == task_id, Job.order_id == paid[0]))
        version = session.get(Order, paid[0]).version
    deps.sender.send(JobRef.of(CANCEL_ORDER, child))
    deps.sender.send(JobRef.of(BULK_CANCEL, task_id))

    def ignored() -> bool:
        lines = [line for line in worker_log.read_text().splitlines() if "redelivery ignored" in line]
        return any(child in line for line in lines) and any(task_id in line for line in lines)

    wait_for(ignored, timeout=30, what="both redeliveries to be ignored")
    again = client.simulate_get(f"/api/tasks/{task_id}", headers=admin_headers).json
    assert again["result"] == result and again["progress"]["current"] == 500
    with deps.db.reader() as session:
        assert session.get(Order, paid[0]).version == version
    assert len(refunds()) == 20


def test_customers_may_not_bulk_cancel(client, admin_headers, make_offer, make_key, deps):
    """API.md gives bulk cancel to ops, not to customers: a customer key is 403 ``FORBIDDEN`` for
    its own orders too (and for a dry run, and for more than 10,000 ids), before anything is read
    or written. A customer cancels its orders' items through ``/api/orders/items``."""
    alice = unique_customer()
    offer = make_offer("1.00", stock=10)
    mine = seed_orders(
        deps.db, offer_id=offer, price=Decimal("1.00"), statuses=["pending_payment"] * 2, customer_id=alice
    )
    alice_headers = auth(make_key("customer", alice))
    for order_ids, params in [(mine, {}), (mine, {"dryRun": "true"}), ([f"ord_{i}" for i in range(10_001)], {})]:
        with no_writes(deps.db):
            refused = bulk(client, alice_headers, order_ids, **params)
        assert refused.status_code == 403 and error_code(refused) == "FORBIDDEN", refused.text
    with deps.db.reader() as session:
        assert {session.get(Order, order_id).status for order_id in mine} == {"pending_payment"}
    assert bulk(client, auth(make_key("ops")), mine, dryRun="true").json["cancelled"] == 2


def test_each_child_counts_once_and_the_parent_finalizes_once(deps, make_offer):
    """Service level, no worker: a child whose work is repeated (the worker died before recording
    it) changes nothing the second time, and a second finish never counts into the parent."""
    db = deps.db
    offer = make_offer("2.00", stock=10)
    ids = seed_orders(
        db, offer_id=offer, price=Decimal("2.00"), statuses=["pending_payment", "shipped"], customer_id="c1"
    )
    parent = bulk_cancel.start_bulk_cancel(db, SYSTEM, [*ids, "ord_nope"], reason="test")
    claim_job(db, parent.job_id)
    args = get_args(db, parent.job_id)
    fanned = bulk_cancel.fan_out(db, parent.job_id, args)
    assert not fanned.finished and len(fanned.send) == 3
    pending_child, shipped_child, unknown_child = sorted(fanned.send, key=lambda r: order_of(db, r.job_id, ids))

    def run(child: JobRef) -> bool:
        claimed = claim_job(db, child.job_id)
        assert claimed is not None and claimed.state == "running"
        try:
            outcome = bulk_cancel.cancel_one(db, claimed.args)
        except DomainError as exc:
            return finish_job(db, child.job_id, error=exc.as_dict())
        return finish_job(db, child.job_id, result=outcome.result)

    bulk_cancel.cancel_one(db, get_args(db, pending_child.job_id))  # the work commits, then the worker dies
    version = order_version(db, ids[0])
    assert run(pending_child) is True  # redelivered: nothing left to change, the child is recorded
    assert order_version(db, ids[0]) == version
    assert stock_of(db, offer) == (9, 0)  # the shipped order keeps its unit
    assert get_job(db, SYSTEM, parent.job_id).progress_current == 1

    assert run(shipped_child) is True
    assert get_job(db, SYSTEM, parent.job_id).state == "running"
    assert run(unknown_child) is True
    view = get_job(db, SYSTEM, parent.job_id)
    assert (view.state, view.progress_current, view.progress_total) == ("succeeded", 3, 3)
    assert (view.result["cancelled"], view.result["failed"]) == (1, 2)
    assert [outcome_of(r) for r in view.result["results"]] == ["cancelled", "INVALID_STATUS", "ORDER_NOT_FOUND"]

    for child in fanned.send:
        assert finish_job(db, child.job_id, result={}) is False  # a second finish never counts
    after = get_job(db, SYSTEM, parent.job_id)
    assert (after.progress_current, after.result, after.finished_at) == (3, view.result, view.finished_at)


def order_of(db, job_id: str, ids: list[str]) -> int:
    order_id = get_args(db, job_id)["orderId"]
    return ids.index(order_id) if order_id in ids else len(ids)


def stock_of(db, offer_id: str) -> tuple[int, int]:
    with db.reader() as session:
        offer = session.get(Offer, offer_id)
        return offer.stock_available, offer.stock_reserved


def get_args(db, job_id: str) -> dict:
    with db.reader() as session:
        return dict(session.get(Job, job_id).args)


def order_version(db, order_id: str) -> int:
    with db.reader() as session:
        return session.get(Order, order_id).version


def test_dry_run_is_a_strict_boolean(client, admin_headers):
    """``?dryRun=`` or ``?dryRun=yes`` is refused, never read as true (or false): a typo must not
    turn a rehearsal into a real bulk cancel, or the other way round."""
    for value in ("", "yes", "1", "maybe"):
        result = client.simulate_post(
            "/api/orders/bulk-cancel",
            json={"orderIds": ["ord_missing"]},
            query_string=f"dryRun={value}",
            headers=admin_headers,
        )
        assert result.status_code == 400 and result.json["error"]["code"] == "VALIDATION_ERROR", value
    upper = bulk(client, admin_headers, ["ord_missing"], dryRun="TRUE")
    assert upper.status_code == 200 and upper.json["dryRun"] is True
