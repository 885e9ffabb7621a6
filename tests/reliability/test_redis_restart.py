"""Redis restarted (its queues lost) while orders are being created: no 5xx, and every accepted
order's checkout task still succeeds — the relay re-sends what the restart lost."""

from __future__ import annotations

import time

import requests

from tests.conftest import auth
from tests.reliability.conftest import wait_ready
from tests.reliability.load import LoadRun, create_orders
from tests.support.polling import wait_for
from tests.support.processes import start_beat, start_web, start_worker, stop_process
from workers.embedded_redis import EmbeddedRedis, free_port


def test_redis_restart_during_order_creation_loses_nothing(settings, admin, make_offer, tmp_path):
    redis_server = EmbeddedRedis(tmp_path / "redis")
    own = settings.with_(redis_url=redis_server.start(), relay_interval_seconds=1, relay_grace_seconds=3)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = start_web(own, port, tmp_path / "web.log")
    worker = start_worker(own, tmp_path / "worker.log", name="restart")
    beat = start_beat(own, tmp_path / "beat.log")
    run = LoadRun()
    try:
        wait_ready(base)
        offer = make_offer(stock=100_000)
        threads = create_orders(base, auth(admin), offer, run, threads=6)
        wait_for(lambda: run.count(lambda r: r.status == 201) >= 30, timeout=30, what="orders before the restart")
        redis_server.stop()
        during = run.count(lambda r: True)
        wait_for(lambda: run.count(lambda r: True) >= during + 30, timeout=30, what="orders while Redis is down")
        redis_server.start()
        after = run.count(lambda r: True)
        wait_for(lambda: run.count(lambda r: True) >= after + 30, timeout=30, what="orders after the restart")
        run.stop.set()
        for thread in threads:
            thread.join(20)

        statuses = {r.status for r in run.results}
        assert statuses == {201}, [r.body[:200] for r in run.results if r.status != 201][:5]
        task_ids = [r.task_id for r in run.results]
        headers = auth(admin)

        def all_succeeded() -> bool:
            pending = [
                t
                for t in task_ids
                if requests.get(f"{base}/api/tasks/{t}", headers=headers, timeout=5).json()["state"] != "succeeded"
            ]
            task_ids[:] = pending
            return not pending

        started = time.monotonic()
        wait_for(all_succeeded, timeout=120, interval=0.5, what="every accepted order's checkout task")
        assert time.monotonic() - started < 120
    finally:
        run.stop.set()
        for process in (beat, worker, web):
            stop_process(process)
        redis_server.stop()
