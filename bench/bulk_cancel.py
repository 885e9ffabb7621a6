"""Bulk-cancel benchmark: 10,000 ids through the API, the fan-out and two worker processes,
beside the floor (the same cancellations in one process, calling the service function directly).

For each database it seeds two identical mixes (one per run) on one offer: pending orders, paid
orders (paid in-process through the payments service and the sandbox gateway before the clock
starts), unpaid ``processing`` orders, shipped, completed and cancelled orders, and unknown ids.

* ``floor``: ``services.bulk_cancel.cancel_one`` for each id in one process, one transaction per
  order (what each child does, without Celery and without the job rows).
* ``celery``: ``POST /api/orders/bulk-cancel`` on the in-process app (parent and 10,000 child job
  rows in one transaction, 202), the parent task sends the children in one batch, two worker
  processes (``--concurrency 1`` each, ``orders`` queue) cancel; the clock stops when the parent
  job is ``succeeded`` (the last child gathered the results). Progress is sampled while it runs.

Both runs are checked: the same counts, one result per id, stock restored. Afterwards a worker on
the ``payments`` queue drains the refunds, and the sandbox ledger is counted.

Usage::

    .venv/bin/python -m bench.bulk_cancel --orders 10000 --db sqlite,postgres

It prints a table and writes JSON to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests
from falcon import testing
from sqlalchemy import func, select

from api.app import build_deps, create_app
from bench.harness import Figure, Stack, Workload
from config.settings import Settings
from models import Database, Job, Offer, Order, Payment, SandboxLedgerEntry
from models.migrate import upgrade
from services.access.keys import issue_key
from services.changes.bulk_cancel import cancel_one
from services.kernel.errors import DomainError
from services.kernel.principal import SYSTEM
from services.orders.offers import upsert_offer
from services.payments.execution import execute_payment
from services.payments.gateways.registry import Gateways
from services.payments.requests import PaymentRequest, request_payment
from tests.support.databases import fresh_database
from tests.support.processes import start_worker, stop_process
from tests.support.seed import seed_orders
from workers.app import create_celery_app
from workers.embedded_redis import EmbeddedRedis

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PRICE = Decimal("4.00")
QUANTITY = 2
# Shares of the requested ids (the rest, after these, are pending orders).
MIX = {"paid": 0.05, "processing": 0.05, "shipped": 0.10, "completed": 0.08, "cancelled": 0.05, "unknown": 0.03}
# ARCHITECTURE.md's floor for the bare operation (cancel 10k of 100k orders, one transaction each).
ARCHITECTURE_FLOOR = {"sqlite": 0.43, "postgres": 3.45}


def wait(probe: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"timed out waiting for {what}")


def build_mix(db: Database, settings: Settings, gateways: Gateways, offer: str, count: int, seed: int) -> dict:
    """Seed one mix of ``count`` ids; returns the request order and what each id should end as."""
    rng = random.Random(seed)
    kinds: list[str] = []
    for kind, share in MIX.items():
        kinds += [kind] * int(count * share)
    kinds += ["pending"] * (count - len(kinds))
    rng.shuffle(kinds)
    status_for = {"pending": "pending_payment", "paid": "pending_payment"}
    orders = [k for k in kinds if k != "unknown"]
    ids = seed_orders(
        db,
        offer_id=offer,
        price=PRICE,
        quantity=QUANTITY,
        statuses=[status_for.get(k, k) for k in orders],
        customer_id=f"cust_bench_{seed}",
    )
    kind_of = dict(zip(ids, orders, strict=True))
    paid = [order_id for order_id, kind in kind_of.items() if kind == "paid"]
    for order_id in paid:  # through the payments service and the sandbox gateway, in-process
        queued = request_payment(
            db, SYSTEM, PaymentRequest(order_id, "process", "credit_card", "tok_visa", PRICE * QUANTITY)
        )
        execute_payment(db, gateways, {"transactionId": queued.transaction_id})
    unknown = iter(f"ord_unknown_{seed}_{i:05d}" for i in range(count))
    request = [next(unknown) if kind == "unknown" else None for kind in kinds]
    order_iter = iter(ids)
    request = [value if value is not None else next(order_iter) for value in request]
    expected = Counter(
        "ORDER_NOT_FOUND"
        if order_id not in kind_of
        else ("INVALID_STATUS" if kind_of[order_id] in ("shipped", "completed") else "cancelled")
        for order_id in request
    )
    return {"request": request, "ids": ids, "paid": paid, "kinds": Counter(kinds), "expected": expected}


def stock(db: Database, offer: str) -> tuple[int, int]:
    with db.reader() as session:
        row = session.get(Offer, offer)
        return row.stock_available, row.stock_reserved


def sold_units(mix: dict) -> int:
    return (mix["kinds"]["shipped"] + mix["kinds"]["completed"]) * QUANTITY


def run_floor(db: Database, mix: dict) -> dict[str, Any]:
    principal = {"keyId": SYSTEM.key_id, "role": SYSTEM.role, "customerId": None}
    outcomes: Counter[str] = Counter()
    started = time.perf_counter()
    for order_id in mix["request"]:
        try:
            cancel_one(db, {"orderId": order_id, "reason": "bench", "principal": principal, "requestId": None})
            outcomes["cancelled"] += 1
        except DomainError as exc:
            outcomes[exc.code] += 1
    seconds = time.perf_counter() - started
    assert outcomes == mix["expected"], (outcomes, mix["expected"])
    return {"seconds": round(seconds, 3), "ordersPerSecond": round(len(mix["request"]) / seconds, 1)}


def run_celery(db: Database, settings: Settings, mix: dict, workdir: Path, workers: int) -> dict[str, Any]:
    logs = workdir / "workers.log"
    processes = [start_worker(settings, logs, queues="orders", concurrency=1, name=f"bench{i}") for i in range(workers)]
    control = create_celery_app(settings)
    try:
        wait(lambda: len(control.control.ping(timeout=0.5) or []) >= workers, 60, "the workers")
        deps = build_deps(settings)
        client = testing.TestClient(create_app(settings, deps))
        headers = {"Authorization": f"Bearer {issue_key(db, 'ops').key}"}
        started = time.perf_counter()
        accepted = client.simulate_post(
            "/api/orders/bulk-cancel", json={"orderIds": mix["request"], "reason": "bench"}, headers=headers
        )
        accepted_after = time.perf_counter() - started
        assert accepted.status_code == 202, accepted.text
        task_id = accepted.json["taskId"]
        samples: list[tuple[float, int]] = []

        def done() -> bool:
            with db.reader() as session:
                job = session.get(Job, task_id)
                samples.append((round(time.perf_counter() - started, 2), job.progress_current))
                return job.state == "succeeded"

        wait(done, 600, "the bulk cancel", interval=0.1)
        seconds = time.perf_counter() - started
        task = client.simulate_get(f"/api/tasks/{task_id}", headers=headers).json
        with db.reader() as session:
            sent_last = session.scalar(select(func.max(Job.sent_at)).where(Job.parent_id == task_id))
            created = session.get(Job, task_id).created_at
        deps.db.dispose()
    finally:
        for process in processes:
            stop_process(process)
    result = task["result"]
    outcomes = Counter(r["status"] if "status" in r else r["error"]["code"] for r in result["results"])
    assert outcomes == mix["expected"], (outcomes, mix["expected"])
    assert [r["orderId"] for r in result["results"]] == mix["request"]
    currents = [current for _, current in samples]
    assert currents == sorted(currents) and any(0 < c < len(mix["request"]) for c in currents)
    return {
        "seconds": round(seconds, 3),
        "ordersPerSecond": round(len(mix["request"]) / seconds, 1),
        "acceptedAfterSeconds": round(accepted_after, 3),
        "allChildrenSentAfterSeconds": round((sent_last - created).total_seconds(), 3) if sent_last else None,
        "progressSamples": samples[:: max(1, len(samples) // 12)] + samples[-1:],
        "cancelled": result["cancelled"],
        "failed": result["failed"],
    }


def drain_refunds(db: Database, settings: Settings, mix: dict, workdir: Path) -> dict[str, Any]:
    process = start_worker(settings, workdir / "payments.log", queues="payments", concurrency=2, name="benchpay")
    started = time.perf_counter()
    try:

        def booked() -> int | None:
            with db.reader() as session:
                count = session.scalar(
                    select(func.count())
                    .select_from(SandboxLedgerEntry)
                    .join(Payment, Payment.gateway_transaction_id == SandboxLedgerEntry.parent_id)
                    .where(
                        SandboxLedgerEntry.kind == "refund",
                        Payment.action == "process",
                        Payment.order_id.in_(mix["paid"]),
                    )
                )
            return count if count >= len(mix["paid"]) else None

        count = wait(booked, 600, "the refunds", interval=0.2) if mix["paid"] else 0
    finally:
        stop_process(process)
    with db.reader() as session:
        refunded = session.scalar(
            select(func.count()).select_from(Order).where(Order.id.in_(mix["paid"]), Order.payment_status == "refunded")
        )
    return {
        "paidCancelled": len(mix["paid"]),
        "ledgerRefunds": count,
        "ordersRefunded": refunded,
        "drainSeconds": round(time.perf_counter() - started, 2),
    }


def run_database(kind: str, count: int, workers: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-bulk-cancel-"))
    redis = EmbeddedRedis(workdir / "redis")
    redis_url = redis.start()
    try:
        with fresh_database(PG_URL if kind == "postgres" else None, workdir) as url:
            settings = Settings(database_url=url, redis_url=redis_url, log_json=True)
            upgrade(settings)
            db = Database.connect(settings)
            gateways = Gateways(settings, db)
            offers, mixes = {}, {}
            for label, seed in (("floor", 1), ("celery", 2)):
                offers[label] = f"offer_bench_{label}"
                upsert_offer(db, offers[label], name="bench", price=PRICE, stock=count * QUANTITY, currency="USD")
                mixes[label] = build_mix(db, settings, gateways, offers[label], count, seed)
            floor = run_floor(db, mixes["floor"])
            celery = run_celery(db, settings, mixes["celery"], workdir, workers)
            for label in ("floor", "celery"):
                expected = (count * QUANTITY - sold_units(mixes[label]), 0)
                assert stock(db, offers[label]) == expected, (label, stock(db, offers[label]), expected)
            refunds = drain_refunds(db, settings, mixes["celery"], workdir)
            db.dispose()
    finally:
        redis.stop()
    return {
        "database": kind,
        "ids": count,
        "mix": dict(mixes["celery"]["kinds"]),
        "expected": dict(mixes["celery"]["expected"]),
        "workers": workers,
        "floor": floor,
        "celery": celery,
        "ratio": round(celery["seconds"] / floor["seconds"], 2),
        "architectureFloorSeconds": ARCHITECTURE_FLOOR[kind],
        "refunds": refunds,
        "loadAverage": os.getloadavg(),
    }


# --- make bench (bench/run.py) ---------------------------------------------------------------------

NAME = "bulk cancel"
BENCH_ORDERS = 10_000


def service_bulk_cancel(stack: Stack, mix: dict) -> tuple[float, dict[str, Any]]:
    """``POST /api/orders/bulk-cancel`` on the running service (gunicorn, the stack's two
    ``orders`` worker processes), polled until the parent task is ``succeeded``."""
    with requests.Session() as session:
        session.headers.update(stack.headers)
        started = time.perf_counter()
        accepted = session.post(
            stack.service_url + "/api/orders/bulk-cancel",
            json={"orderIds": mix["request"], "reason": "bench"},
            timeout=120,
        )
        if accepted.status_code != 202:
            raise RuntimeError(f"bulk cancel answered {accepted.status_code}: {accepted.text[:300]}")
        task_url = f"{stack.service_url}/api/tasks/{accepted.json()['taskId']}"

        def finished() -> dict[str, Any] | None:
            task = session.get(task_url, timeout=30).json()
            if task["state"] == "failed":
                raise RuntimeError(f"bulk cancel failed: {task['error']}")
            return task if task["state"] == "succeeded" else None

        task = wait(finished, 900, "the bulk cancel", interval=0.1)
        return time.perf_counter() - started, task["result"]


def run_workload(stack: Stack) -> list[Figure]:
    """10,000 ids (the module's mix: pending, paid, unpaid processing, shipped, completed, already
    cancelled, unknown) through the service vs :func:`services.bulk_cancel.cancel_one` for each id
    of an identical mix in one process. Both outcomes are checked against the expected counts; the
    refunds of the paid orders are drained before the next workload."""
    gateways = Gateways(stack.settings, stack.db)
    mixes = {}
    for label, seed in (("floor", 11), ("service", 12)):
        offer = f"offer_bench_cancel_{label}_{secrets.token_hex(3)}"
        upsert_offer(stack.db, offer, name="bench", price=PRICE, stock=BENCH_ORDERS * QUANTITY, currency="USD")
        mixes[label] = build_mix(stack.db, stack.settings, gateways, offer, BENCH_ORDERS, seed)
    stack.settle()
    floor = run_floor(stack.db, mixes["floor"])
    seconds, result = service_bulk_cancel(stack, mixes["service"])
    outcomes = Counter(r["status"] if "status" in r else r["error"]["code"] for r in result["results"])
    if outcomes != mixes["service"]["expected"]:
        raise RuntimeError(f"bulk cancel outcomes {dict(outcomes)} != expected {dict(mixes['service']['expected'])}")
    stack.settle(timeout=300)  # the paid orders' refunds, on the payments queue
    notes = {"ids": BENCH_ORDERS, "expected": dict(outcomes), "floorOrdersPerSecond": floor["ordersPerSecond"]}
    return [Figure(NAME, f"{BENCH_ORDERS:,} ids s", seconds, floor["seconds"], False, notes)]


def workloads() -> list[Workload]:
    return [Workload(NAME, run_workload, f"POST /api/orders/bulk-cancel of {BENCH_ORDERS:,} ids until succeeded")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    runs = [run_database(kind.strip(), args.orders, args.workers) for kind in args.db.split(",")]
    print(f"\nbulk cancel of {args.orders} ids; {args.workers} worker processes; load {os.getloadavg()}")
    print(f"{'db':<9}{'floor s':>9}{'celery s':>10}{'ratio':>7}{'202 after s':>13}{'sent by s':>11}{'refunds':>9}")
    for run in runs:
        print(
            f"{run['database']:<9}{run['floor']['seconds']:>9}{run['celery']['seconds']:>10}{run['ratio']:>7}"
            f"{run['celery']['acceptedAfterSeconds']:>13}{run['celery']['allChildrenSentAfterSeconds']!s:>11}"
            f"{run['refunds']['ledgerRefunds']:>5}/{run['refunds']['paidCancelled']:<3}"
        )
        print(f"  progress (s, current): {run['celery']['progressSamples']}")
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"bulk_cancel-{stamp}.json"
    path.write_text(json.dumps({"machine": platform.platform(), "cpus": os.cpu_count(), "runs": runs}, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
