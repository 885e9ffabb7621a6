"""A worker SIGKILLed at random points while some 300 payment and cancellation tasks run: every
order ends in a state its payments explain, nothing is charged twice, every job finishes and the
stock counters add up.

Real processes: Celery workers (``payments,orders,maintenance``) started with a short broker
visibility timeout, so a message a dead worker held comes back within seconds, and beat, whose
relay re-sends jobs committed but never sent (a worker killed between its commit and its send; a
refund queued by a late capture). The API runs in-process against the same database and a Redis
of the test's own. The kills land at seeded random points of the work: each one waits until a
randomly drawn number of jobs has finished, then kills the worker's whole process group
(``WORKER_KILL_SEED`` replays a run). After each kill a new worker is started; the last one lets
everything finish.

The orders (100, one item each, on one offer) are dealt into groups:

- ``pay``: a ``process`` payment only → ``processing`` / ``completed``;
- ``pay_then_cancel``: paid, then bulk-cancelled once paid → ``cancelled`` / ``refunded``;
- ``race``: a payment and a bulk cancel queued together → ``cancelled``, and refunded if the
  charge landed (a capture that arrives after the cancel is refunded by the payment task);
- ``cancel``: bulk-cancelled unpaid → ``cancelled`` / ``unpaid``;
- ``declined``: ``tok_chargeDeclined`` → ``pending_payment`` / ``failed``;
- ``item_cancel``: paid, then its only item cancelled (``POST /api/orders/items``) → ``cancelled`` /
  ``refunded``.

Every order also has its checkout task (creating an order queues one on ``payments``).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

from falcon import testing
from sqlalchemy import or_, select

from api.app import build_deps, create_app
from models import Job, Offer, Order, OrderItem, Payment, SandboxLedgerEntry
from services.access.keys import issue_key
from services.kernel import lifecycle
from services.orders.offers import upsert_offer
from tests.conftest import auth, unique_customer
from tests.integration.helpers import brief_order, brief_payment
from tests.support.polling import wait_for
from tests.support.processes import start_beat, start_worker, stop_process
from workers.embedded_redis import EmbeddedRedis

SEED = int(os.environ.get("WORKER_KILL_SEED", "20260601"))
PRICE = Decimal("10.00")
STOCK = 1000
GROUPS = {"pay": 30, "pay_then_cancel": 25, "race": 15, "cancel": 15, "declined": 10, "item_cancel": 5}
KILLS_WHILE_PAYING = 3
KILLS_WHILE_CANCELLING = 2
VISIBILITY_TIMEOUT_SECONDS = 4
# Long enough that a kill often lands inside the gateway call, short enough to keep the run brief.
SANDBOX_PAUSE_SECONDS = 0.15
FINISH_SECONDS = 60
TOTAL_BUDGET_SECONDS = 90
FINISHED = ("succeeded", "failed")


class Workers:
    """The current worker process; ``kill`` SIGKILLs its process group and starts the next one."""

    def __init__(self, settings, log: Path) -> None:  # noqa: ANN001
        self.settings, self.log = settings, log
        self.generation = 0
        self.process = self._start()
        self.kills = 0

    def _start(self) -> subprocess.Popen[bytes]:
        self.generation += 1
        return start_worker(
            self.settings,
            self.log,
            queues="payments,orders,maintenance",
            concurrency=3,
            name=f"doomed{self.generation}",
        )

    def kill(self) -> None:
        assert self.process.poll() is None, "the worker died on its own: " + self.log.read_text()[-3000:]
        stop_process(self.process, sig=signal.SIGKILL)
        self.kills += 1
        self.process = self._start()

    def stop(self) -> None:
        stop_process(self.process)


def jobs_of(db, order_ids: list[str], parents: list[str]) -> list[Job]:  # noqa: ANN001
    """Every job these orders made: checkouts, payments, refunds, bulk-cancel parents and children,
    and any reconciliation attempt."""
    with db.reader() as session:
        return list(
            session.scalars(
                select(Job).where(
                    or_(Job.order_id.in_(order_ids), Job.id.in_(parents or [""]), Job.parent_id.in_(parents or [""]))
                )
            )
        )


def kill_at_random_points(workers: Workers, db, rng: random.Random, kills: int, order_ids, parents, before: int):  # noqa: ANN001
    """Kill ``kills`` times, each once a randomly drawn number of this phase's jobs has finished
    and some job is ``running`` (claimed), so the kill lands in the middle of a task."""
    total = len(jobs_of(db, order_ids, parents)) - before
    points = sorted(rng.sample(range(max(1, total // 10), max(2, total * 8 // 10)), kills))
    for point in points:

        def reached(point: int = point) -> bool:
            jobs = jobs_of(db, order_ids, parents)
            done = sum(1 for job in jobs if job.state in FINISHED)
            if all(job.state in FINISHED for job in jobs):
                return True
            return done - before >= point and any(job.state == "running" for job in jobs)

        wait_for(reached, timeout=40, interval=0.05, what=f"{point} finished jobs before kill {workers.kills + 1}")
        workers.kill()


def test_worker_killed_at_random_points_during_payments_and_cancellations(settings, tmp_path):
    started = time.monotonic()
    rng = random.Random(SEED)
    redis = EmbeddedRedis(tmp_path / "redis")
    own = settings.with_(
        redis_url=redis.start(),
        broker_visibility_timeout_seconds=VISIBILITY_TIMEOUT_SECONDS,
        sandbox_pause_seconds=SANDBOX_PAUSE_SECONDS,
        relay_interval_seconds=1,
        relay_grace_seconds=5,
    )
    deps = build_deps(own)
    client = testing.TestClient(create_app(own, deps))
    db = deps.db
    headers = auth(issue_key(db, "admin"))
    offer = f"offer_kills_{rng.randrange(16**8):08x}"
    upsert_offer(db, offer, name="Kill test", price=PRICE, stock=STOCK, currency=own.currency)
    workers = Workers(own, tmp_path / "workers.log")
    beat = start_beat(own, tmp_path / "beat.log")
    try:
        # 100 orders, dealt into the groups in a seeded order.
        kinds = [kind for kind, count in GROUPS.items() for _ in range(count)]
        rng.shuffle(kinds)
        group: dict[str, list[str]] = {kind: [] for kind in GROUPS}
        for kind in kinds:
            placed = client.simulate_post(
                "/api/orders", json=brief_order(offer, unique_customer(), price=float(PRICE)), headers=headers
            )
            assert placed.status_code == 201, placed.text
            group[kind].append(placed.json["orderId"])
        order_ids = [order_id for ids in group.values() for order_id in ids]

        # Phase 1: payments for every group that pays, and the racing and unpaid cancellations.
        for kind in ("pay", "pay_then_cancel", "race", "declined", "item_cancel"):
            token = "tok_chargeDeclined" if kind == "declined" else "tok_visa"
            for order_id in group[kind]:
                queued = client.simulate_post(
                    "/api/orders/payment",
                    json=brief_payment(order_id, token=token, amount=float(PRICE)),
                    headers=headers,
                )
                assert queued.status_code == 202, queued.text
        first = client.simulate_post(
            "/api/orders/bulk-cancel",
            json={"orderIds": group["race"] + group["cancel"], "reason": "race"},
            headers=headers,
        )
        assert first.status_code == 202, first.text
        parents = [first.json["taskId"]]
        kill_at_random_points(workers, db, rng, KILLS_WHILE_PAYING, order_ids, parents, before=0)

        # Phase 2: once paid, cancel orders (bulk) and an order's only item: refunds flow.
        paid_first = group["pay_then_cancel"] + group["item_cancel"]

        def all_paid() -> bool:
            with db.reader() as session:
                rows = session.scalars(select(Order.status).where(Order.id.in_(paid_first))).all()
            return len(rows) == len(paid_first) and set(rows) == {lifecycle.PROCESSING}

        wait_for(all_paid, timeout=40, interval=0.1, what="the orders to cancel after payment to be paid")
        finished_before = sum(1 for job in jobs_of(db, order_ids, parents) if job.state in FINISHED)
        second = client.simulate_post(
            "/api/orders/bulk-cancel",
            json={"orderIds": group["pay_then_cancel"], "reason": "changed my mind"},
            headers=headers,
        )
        assert second.status_code == 202, second.text
        parents.append(second.json["taskId"])
        for order_id in group["item_cancel"]:
            with db.reader() as session:
                item_id = session.scalar(select(OrderItem.id).where(OrderItem.order_id == order_id))
            cancelled = client.simulate_post(
                "/api/orders/items",
                json={"orderId": order_id, "items": [{"itemId": item_id, "action": "cancel", "reason": "oos"}]},
                headers=headers,
            )
            assert cancelled.status_code == 200, cancelled.text
        kill_at_random_points(workers, db, rng, KILLS_WHILE_CANCELLING, order_ids, parents, before=finished_before)

        # The last worker lets everything finish: no job stays queued or running.
        def all_finished() -> list[Job] | None:
            jobs = jobs_of(db, order_ids, parents)
            return jobs if all(job.state in FINISHED for job in jobs) else None

        try:
            jobs = wait_for(all_finished, timeout=FINISH_SECONDS, interval=0.2, what="every job to finish")
        except AssertionError:
            stuck = [(j.type, j.state, j.attempts) for j in jobs_of(db, order_ids, parents) if j.state not in FINISHED]
            raise AssertionError(f"jobs left unfinished: {Counter(stuck)}") from None
    finally:
        workers.stop()
        stop_process(beat)
        deps.db.dispose()
        redis.stop()

    elapsed = time.monotonic() - started
    kinds_of_jobs = Counter(job.type for job in jobs)
    assert workers.kills == KILLS_WHILE_PAYING + KILLS_WHILE_CANCELLING
    assert len(jobs) >= 200, kinds_of_jobs
    assert any(job.attempts > 1 for job in jobs), "no kill landed on a running job"

    with db.reader() as session:
        orders = {o.id: o for o in session.scalars(select(Order).where(Order.id.in_(order_ids)))}
        payments = list(session.scalars(select(Payment).where(Payment.order_id.in_(order_ids))))
        ledger = list(
            session.scalars(select(SandboxLedgerEntry).where(SandboxLedgerEntry.kind.in_(("charge", "refund"))))
        )
        items = list(session.scalars(select(OrderItem).where(OrderItem.offer_id == offer)))
        stock = session.get(Offer, offer)

    # Every order in a lifecycle status its payment status explains, per group.
    expected = {
        "pay": {(lifecycle.PROCESSING, lifecycle.PAYMENT_COMPLETED)},
        "pay_then_cancel": {(lifecycle.CANCELLED, lifecycle.PAYMENT_REFUNDED)},
        "race": {
            (lifecycle.CANCELLED, lifecycle.PAYMENT_REFUNDED),
            (lifecycle.CANCELLED, lifecycle.PAYMENT_UNPAID),
            (lifecycle.CANCELLED, lifecycle.PAYMENT_FAILED),
        },
        "cancel": {(lifecycle.CANCELLED, lifecycle.PAYMENT_UNPAID)},
        "declined": {(lifecycle.PENDING_PAYMENT, lifecycle.PAYMENT_FAILED)},
        "item_cancel": {(lifecycle.CANCELLED, lifecycle.PAYMENT_REFUNDED)},
    }
    wrong = {
        order_id: (kind, orders[order_id].status, orders[order_id].payment_status)
        for kind, ids in group.items()
        for order_id in ids
        if (orders[order_id].status, orders[order_id].payment_status) not in expected[kind]
    }
    assert not wrong, wrong
    assert {o.status for o in orders.values()} <= set(lifecycle.order_statuses())

    # No payment left pending; at most one charge per attempt and per order; refunds never exceed charges.
    assert not [p.id for p in payments if p.action != "checkout" and p.state == "pending"]
    payment_of_txn = {
        p.gateway_transaction_id: p for p in payments if p.action == "process" and p.gateway_transaction_id
    }
    charges = [e for e in ledger if e.kind == "charge" and e.status != "declined" and e.reference in orders]
    charges_per_order = Counter(e.reference for e in charges)
    assert max(charges_per_order.values()) == 1, [k for k, n in charges_per_order.items() if n > 1]
    assert len({e.idempotency_key for e in charges}) == len(charges)
    charged = {e.reference: e.amount for e in charges}
    refunded: Counter[str] = Counter()
    for entry in ledger:
        if entry.kind == "refund" and entry.parent_id in payment_of_txn:
            refunded[payment_of_txn[entry.parent_id].order_id] += entry.amount
    for order_id, order in orders.items():
        assert refunded[order_id] <= charged.get(order_id, 0), order_id
        if order.status == lifecycle.CANCELLED:  # a cancelled order keeps none of the customer's money
            assert refunded[order_id] == charged.get(order_id, 0), (order_id, refunded[order_id], charged.get(order_id))
        if order.status == lifecycle.PROCESSING:
            assert charged.get(order_id) == PRICE and not refunded[order_id], order_id
    assert all(charges_per_order[o] == 1 for o in group["pay"] + group["pay_then_cancel"] + group["item_cancel"])

    # Stock: what is on sale, held and sold adds up to what the offer started with.
    held = sum(
        i.quantity
        for i in items
        if i.status in lifecycle.LIVE_ITEM_STATUSES and orders[i.order_id].status in lifecycle.STOCK_HELD_STATUSES
    )
    sold = sum(
        i.quantity
        for i in items
        if i.status in lifecycle.LIVE_ITEM_STATUSES
        and orders[i.order_id].status not in lifecycle.STOCK_HELD_STATUSES | {lifecycle.CANCELLED}
    )
    assert stock.stock_reserved == held, (stock.stock_reserved, held)
    assert stock.stock_available + stock.stock_reserved + sold == STOCK, (stock.stock_available, held, sold)

    print(
        f"\nworker kills: {workers.kills} kills, {len(jobs)} jobs {dict(kinds_of_jobs)}, "
        f"{sum(1 for j in jobs if j.attempts > 1)} run again after a kill, {elapsed:.1f} s (seed {SEED})"
    )
    assert elapsed < TOTAL_BUDGET_SECONDS, elapsed
