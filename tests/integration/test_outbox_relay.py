"""An order accepted while Redis is down is processed once Redis is back, with no client retry."""

from __future__ import annotations

from falcon import testing

from api.app import build_deps, create_app
from tests.conftest import unique_customer
from tests.integration.helpers import brief_order, wait_task
from tests.support.processes import start_beat, start_worker, stop_process
from workers.embedded_redis import EmbeddedRedis


def test_order_created_while_redis_is_down_is_processed_after_it_returns(settings, admin_headers, make_offer, tmp_path):
    redis_server = EmbeddedRedis(tmp_path / "redis")
    own = settings.with_(redis_url=redis_server.start())
    worker = start_worker(own, tmp_path / "worker.log", name="relay")
    beat = start_beat(own, tmp_path / "beat.log")
    try:
        redis_server.stop()
        client = testing.TestClient(create_app(own, build_deps(own)))
        created = client.simulate_post(
            "/api/orders", json=brief_order(make_offer(), unique_customer()), headers=admin_headers
        )
        assert created.status_code == 201, created.text
        assert client.simulate_get("/readyz").status_code == 503

        redis_server.start()  # the same address again, with empty queues
        task = wait_task(client, created.json["taskId"], admin_headers, timeout=90)
        assert task["state"] == "succeeded", task
    finally:
        stop_process(beat)
        stop_process(worker)
        redis_server.stop()
