"""``/metrics``: request counters, orders created, and queue depth read from Redis."""

from __future__ import annotations

import re

from falcon import testing

from api.app import build_deps, create_app
from tests.conftest import unique_customer
from tests.integration.helpers import brief_order


def _sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name) and all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_queue_depth_counts_waiting_messages(settings, admin_headers, make_offer):
    # A Redis database no worker consumes: the checkout messages stay in the payments queue.
    idle = settings.with_(redis_url=re.sub(r"/\d+$", "/7", settings.redis_url))
    client = testing.TestClient(create_app(idle, build_deps(idle)))
    before = client.simulate_get("/metrics").text
    offer = make_offer(stock=10)
    for _ in range(3):
        assert (
            client.simulate_post(
                "/api/orders", json=brief_order(offer, unique_customer()), headers=admin_headers
            ).status_code
            == 201
        )
    after = client.simulate_get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    assert (
        _sample(after.text, "orders_queue_depth", queue="payments")
        == _sample(before, "orders_queue_depth", queue="payments") + 3
    )
    for queue in ("orders", "exports", "maintenance"):
        assert f'orders_queue_depth{{queue="{queue}"}}' in after.text
    assert _sample(after.text, "orders_created_total") >= _sample(before, "orders_created_total") + 3
    assert _sample(after.text, "orders_http_requests_total", route="/api/orders", status="201", method="POST") >= 3
    assert _sample(after.text, "orders_http_request_duration_seconds_count", route="/api/orders", method="POST") >= 3
