"""A worker SIGKILLed in the middle of a payment: its job is back in the queue within the lease,
not the broker's visibility timeout, and the payment ends charged once and the order consistent.

Real processes: the doomed worker (``payments``, its sandbox gateway pausing 60 s inside the
charge call after booking the charge), a rescuer worker (``payments,maintenance``) and beat (the
lease sweep every second, the unpaid-orders job every second), all on a Redis of the test's own.
The broker's visibility timeout is left at its production default (2 h), so nothing but the lease
can bring the job back within the test's deadline.

- While the doomed worker is alive and paused for longer than the lease, its heartbeat renews the
  lease and the job is not taken from it.
- After the SIGKILL, the job is ``queued`` again within ``lease + sweep interval`` (plus beat's
  scheduling slack), runs on the rescuer under the same idempotency key: one charge, order
  ``processing``.
- With a payment window that closes while the job is dead, the unpaid-orders job does not cancel
  the order (its charge is in flight): it ends ``processing`` with one charge and no refund, never
  ``cancelled``/``unpaid`` while the gateway holds the money.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from falcon import testing
from sqlalchemy import select

from api.app import build_deps, create_app
from api.deps import Deps
from config.settings import Settings
from models import Job, Payment, StatusHistory
from tests.integration.helpers import brief_payment, order_row, place, sandbox_charges
from tests.support.polling import wait_for
from tests.support.processes import start_beat, start_ready_worker, stop_process
from workers.embedded_redis import EmbeddedRedis

LEASE_SECONDS = 3
SWEEP_SECONDS = 1
# Beat checks its schedule at least every 5 s (beat_max_loop_interval) and the sweep itself is a
# maintenance task: the bound the test holds the recovery to.
RECOVERY_BOUND_SECONDS = LEASE_SECONDS + SWEEP_SECONDS + 5


@dataclass
class Stack:
    settings: Settings
    deps: Deps
    client: testing.TestClient
    logs: Path
    processes: list[Any]


@contextmanager
def stack(settings: Settings, tmp_path: Path, *, lease: int = LEASE_SECONDS, **changes: Any) -> Iterator[Stack]:
    redis = EmbeddedRedis(tmp_path / "redis")
    own = settings.with_(
        redis_url=redis.start(),
        job_lease_seconds=lease,
        recovery_interval_seconds=SWEEP_SECONDS,
        broker_visibility_timeout_seconds=2 * 3600,
        **changes,
    )
    deps = build_deps(own)
    running = Stack(own, deps, testing.TestClient(create_app(own, deps)), tmp_path, [])
    try:
        yield running
    finally:
        for process in running.processes:
            stop_process(process)
        deps.db.dispose()
        redis.stop()


def job_of(deps: Deps, job_id: str) -> Job:
    with deps.db.reader() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def pay_on_a_worker_that_will_die(run: Stack, admin_headers: dict[str, str], offer: str) -> tuple[str, str, Any]:
    """Order and payment; returns (order id, payment job id, the doomed worker) once the charge is
    booked and the worker sits inside the gateway call."""
    doomed = start_ready_worker(
        run.settings, run.logs / "doomed.log", queues="payments", name="doomed", env={"SANDBOX_PAUSE_SECONDS": "60"}
    )
    run.processes.append(doomed)
    order = place(run.client, admin_headers, offer, price=10.0)
    queued = run.client.simulate_post(
        "/api/orders/payment", json=brief_payment(order["orderId"], amount=10.0), headers=admin_headers
    )
    assert queued.status_code == 202, queued.text
    wait_for(lambda: sandbox_charges(run.deps.db, order["orderId"]), timeout=30, what="the charge to be booked")
    return order["orderId"], queued.json["taskId"], doomed


def start_rescue(run: Stack) -> None:
    run.processes.append(
        start_ready_worker(
            run.settings, run.logs / "rescuer.log", queues="payments,maintenance", name="rescuer", concurrency=2
        )
    )
    run.processes.append(start_beat(run.settings, run.logs / "beat.log"))


def kill_and_time_recovery(run: Stack, doomed: Any, job_id: str) -> tuple[float, float]:
    """SIGKILL the doomed worker; seconds until its job was queued again, and until it finished."""
    stop_process(doomed, sig=signal.SIGKILL)
    killed = time.monotonic()
    back = wait_for(
        lambda: (job := job_of(run.deps, job_id)).state != "running" or job.attempts > 1,
        timeout=RECOVERY_BOUND_SECONDS + 20,
        interval=0.1,
        what="the dead worker's job to be queued again",
    )
    assert back
    recovered = time.monotonic() - killed
    done = wait_for(
        lambda: (job := job_of(run.deps, job_id)).state in ("succeeded", "failed") and job,
        timeout=30,
        interval=0.1,
        what="the recovered job to finish",
    )
    assert done.state == "succeeded", done.error
    return recovered, time.monotonic() - killed


def test_a_killed_workers_payment_is_back_within_the_lease_and_charged_once(
    settings, make_offer, admin_headers, tmp_path
) -> None:
    with stack(settings, tmp_path) as run:
        order_id, job_id, doomed = pay_on_a_worker_that_will_die(run, admin_headers, make_offer(price="10.00"))
        claimed = job_of(run.deps, job_id)
        assert (claimed.state, claimed.attempts) == ("running", 1) and claimed.heartbeat_at is not None
        start_rescue(run)

        # Alive and busy for longer than the lease: the heartbeat keeps the job where it is.
        first_beat = claimed.heartbeat_at
        wait_for(
            lambda: job_of(run.deps, job_id).heartbeat_at > first_beat,
            timeout=LEASE_SECONDS * 2,
            what="the doomed worker's heartbeat to renew the lease",
        )
        alive_until = time.monotonic() + 2 * LEASE_SECONDS
        while time.monotonic() < alive_until:
            job = job_of(run.deps, job_id)
            assert (job.state, job.attempts) == ("running", 1), "a live worker's job was taken from it"
            time.sleep(0.2)

        recovered, finished = kill_and_time_recovery(run, doomed, job_id)
        job = job_of(run.deps, job_id)
        assert job.attempts == 2 and job.result["paymentStatus"] == "completed", (job.attempts, job.result)
        assert len(sandbox_charges(run.deps.db, order_id)) == 1  # the same idempotency key: one charge
        current = order_row(run.deps.db, order_id)
        assert (current.status, current.payment_status) == ("processing", "completed")
        print(
            f"\ndead worker's payment: queued again {recovered:.1f} s after the SIGKILL, succeeded after "
            f"{finished:.1f} s (lease {LEASE_SECONDS} s, sweep every {SWEEP_SECONDS} s, visibility timeout 2 h)"
        )
        assert recovered <= RECOVERY_BOUND_SECONDS, recovered


@pytest.mark.timeout(120)
def test_a_payment_window_closing_while_the_charge_is_in_flight_does_not_cancel_the_order(
    settings, make_offer, admin_headers, tmp_path
) -> None:
    # The window closes while the worker is dead (a lease longer than the window), and the
    # unpaid-orders job runs every second meanwhile.
    lease = 8
    with stack(settings, tmp_path, lease=lease, payment_window_seconds=4, expire_orders_interval_seconds=1) as run:
        order_id, job_id, doomed = pay_on_a_worker_that_will_die(run, admin_headers, make_offer(price="10.00"))
        start_rescue(run)
        hold = order_row(run.deps.db, order_id).hold_expires_at
        stop_process(doomed, sig=signal.SIGKILL)
        wait_for(lambda: time.time() > hold.timestamp() + 2, timeout=30, what="the payment window to pass")
        # The unpaid-orders job has run (every second) on an order past its window whose charge is
        # still in flight: the order waits for it.
        assert job_of(run.deps, job_id).state == "running"
        assert order_row(run.deps.db, order_id).status == "pending_payment"
        job = wait_for(
            lambda: (found := job_of(run.deps, job_id)).state in ("succeeded", "failed") and found,
            timeout=lease + RECOVERY_BOUND_SECONDS + 30,
            interval=0.1,
            what="the recovered payment to finish",
        )
        assert job.state == "succeeded", job.error
        current = order_row(run.deps.db, order_id)
        assert (current.status, current.payment_status) == ("processing", "completed")
        assert len(sandbox_charges(run.deps.db, order_id)) == 1
        with run.deps.db.reader() as session:
            statuses = session.scalars(select(StatusHistory.to_status).where(StatusHistory.order_id == order_id)).all()
            refunds = session.scalars(
                select(Payment.id).where(Payment.order_id == order_id, Payment.action == "refund")
            ).all()
        assert "cancelled" not in statuses and not refunds, (statuses, refunds)
