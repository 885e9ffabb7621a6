"""Stopping processes as a deploy does (SIGTERM), with bounds a supervisor can rely on.

- A worker in the middle of a long task, sent SIGTERM (the main process only, as systemd's
  ``KillMode=mixed`` and Kubernetes do): it exits within ``WORKER_SOFT_SHUTDOWN_SECONDS`` plus a
  few seconds, not when the task would have ended, and the task's message goes back to the
  queue at once: another worker finishes the job. The lease is set far longer than the test, so
  only the requeue can bring the job back in time.
- The web, sent SIGTERM with ``WEB_DRAIN_SECONDS``: ``/readyz`` answers 503 (``draining``) while
  other requests are still served, then the process exits.
"""

from __future__ import annotations

import signal
import time

import requests

from api.app import build_deps, create_app
from models import Job
from tests.integration.helpers import brief_payment, place, sandbox_charges
from tests.reliability.conftest import wait_ready
from tests.support.polling import wait_for
from tests.support.processes import start_ready_worker, start_web, stop_process
from workers.embedded_redis import EmbeddedRedis, free_port

SOFT_SHUTDOWN_SECONDS = 2


def test_sigterm_to_a_busy_worker_is_bounded_and_requeues_its_task(
    settings, make_offer, admin_headers, tmp_path
) -> None:
    from falcon import testing

    redis = EmbeddedRedis(tmp_path / "redis")
    own = settings.with_(
        redis_url=redis.start(), worker_soft_shutdown_seconds=SOFT_SHUTDOWN_SECONDS, job_lease_seconds=600
    )
    deps = build_deps(own)
    client = testing.TestClient(create_app(own, deps))
    processes = []
    try:
        busy = start_ready_worker(
            own, tmp_path / "busy.log", queues="payments", name="busy", env={"SANDBOX_PAUSE_SECONDS": "60"}
        )
        processes.append(busy)
        order = place(client, admin_headers, make_offer())
        queued = client.simulate_post(
            "/api/orders/payment", json=brief_payment(order["orderId"]), headers=admin_headers
        )
        assert queued.status_code == 202, queued.text
        job_id = queued.json["taskId"]
        wait_for(lambda: sandbox_charges(deps.db, order["orderId"]), timeout=30, what="the task to be mid-charge")

        busy.send_signal(signal.SIGTERM)  # the main process only (KillMode=mixed)
        asked = time.monotonic()
        busy.wait(SOFT_SHUTDOWN_SECONDS + 15)
        stopped = time.monotonic() - asked
        assert stopped < SOFT_SHUTDOWN_SECONDS + 10, stopped

        processes.append(start_ready_worker(own, tmp_path / "next.log", queues="payments", name="next"))

        def finished() -> Job | None:
            with deps.db.reader() as session:
                job = session.get(Job, job_id)
                return job if job.state in ("succeeded", "failed") else None

        job = wait_for(finished, timeout=30, what="the requeued task on the next worker")
        assert job.state == "succeeded" and job.attempts == 2, (job.state, job.attempts, job.error)
        assert len(sandbox_charges(deps.db, order["orderId"])) == 1
        print(f"\nSIGTERM to a busy worker: exited after {stopped:.1f} s (soft shutdown {SOFT_SHUTDOWN_SECONDS} s)")
    finally:
        for process in processes:
            stop_process(process)
        deps.db.dispose()
        redis.stop()


def test_sigterm_to_the_web_drains_with_readyz_503(settings, tmp_path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = start_web(settings, port, tmp_path / "web.log", workers=1, WEB_DRAIN_SECONDS="3")
    try:
        wait_ready(base)
        web.send_signal(signal.SIGTERM)
        asked = time.monotonic()

        def draining() -> bool:
            answer = requests.get(base + "/readyz", timeout=2)
            return answer.status_code == 503 and answer.json()["status"] == "draining"

        wait_for(draining, timeout=3, interval=0.05, what="/readyz to answer 503 while draining")
        assert requests.get(base + "/readyz", timeout=2).headers["Retry-After"] == "5"
        assert requests.get(base + "/healthz", timeout=2).status_code == 200  # still serving
        assert time.monotonic() - asked < 3
        web.wait(20)
        assert web.returncode == 0
        assert time.monotonic() - asked >= 3  # it served for the whole drain
    finally:
        stop_process(web)
