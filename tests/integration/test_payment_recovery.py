"""A worker killed (SIGKILL) inside the gateway call: the redelivered task charges once."""

from __future__ import annotations

import signal

from falcon import testing

from api.app import build_deps, create_app
from models import Job
from tests.integration.helpers import brief_payment, order_row, place, sandbox_charges
from tests.support.polling import wait_for
from tests.support.processes import start_worker, stop_process
from workers.app import create_celery_app
from workers.embedded_redis import EmbeddedRedis


def start_ready_worker(settings, log, name: str, env: dict[str, str]):
    process = start_worker(settings, log, queues="payments", concurrency=1, name=name, env=env)
    control = create_celery_app(settings)

    def answered() -> bool:
        assert process.poll() is None, log.read_text()[-3000:]
        return bool(control.control.ping(timeout=0.5))

    wait_for(answered, timeout=60, what=f"worker {name} to answer a ping")
    return process


def test_worker_killed_mid_charge_then_redelivered_charges_once(settings, make_offer, admin_headers, run_dir):
    # A Redis of this test's own, so the session's worker never takes these messages.
    redis = EmbeddedRedis(run_dir / "redis-recovery")
    own = settings.with_(redis_url=redis.start())
    deps = build_deps(own)
    client = testing.TestClient(create_app(own, deps))
    log = run_dir / "worker-recovery.log"
    first = second = None
    try:
        # The first worker's sandbox books the charge, then sleeps inside the call.
        first = start_ready_worker(own, log, "doomed", {"SANDBOX_PAUSE_SECONDS": "60"})
        order = place(client, admin_headers, make_offer())
        queued = client.simulate_post(
            "/api/orders/payment", json=brief_payment(order["orderId"]), headers=admin_headers
        )
        assert queued.status_code == 202, queued.text
        task_id = queued.json["taskId"]
        wait_for(lambda: sandbox_charges(deps.db, order["orderId"]), timeout=20, what="the charge to be booked")

        stop_process(first, sig=signal.SIGKILL)  # the whole process group, mid-call
        with deps.db.reader() as session:
            job = session.get(Job, task_id)
            assert (job.state, job.attempts) == ("running", 1)
        assert order_row(deps.db, order["orderId"]).status == "pending_payment"

        # A new worker with a short visibility timeout takes the unacked message back at start-up.
        second = start_ready_worker(
            own, log, "rescuer", {"SANDBOX_PAUSE_SECONDS": "0", "BROKER_VISIBILITY_TIMEOUT_SECONDS": "2"}
        )

        def finished() -> Job | None:
            with deps.db.reader() as session:
                found = session.get(Job, task_id)
                return found if found.state in ("succeeded", "failed") else None

        job = wait_for(finished, timeout=40, what="the redelivered payment task")
        assert job.state == "succeeded" and job.attempts == 2, (job.state, job.error)
        assert job.result["paymentStatus"] == "completed"
        assert len(sandbox_charges(deps.db, order["orderId"])) == 1  # the same idempotency key: one charge
        current = order_row(deps.db, order["orderId"])
        assert (current.status, current.payment_status) == ("processing", "completed")
    finally:
        for process in (first, second):
            if process is not None:
                stop_process(process)
        deps.db.dispose()
        redis.stop()
