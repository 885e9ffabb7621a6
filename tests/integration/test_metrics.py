"""``/metrics``: request counters, orders created, queue depth read from Redis, and who may read it
(``METRICS_TOKEN`` when set, otherwise loopback clients only)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from falcon import testing

from api.app import build_deps, create_app
from api.resources.metrics import is_loopback
from config.settings import Settings
from tests.conftest import auth, unique_customer
from tests.integration.helpers import brief_order, no_writes


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


@pytest.fixture
def token_client(settings) -> Iterator[testing.TestClient]:
    """The app with ``METRICS_TOKEN`` set."""
    tokened = settings.with_(metrics_token="scrape-s3cret")
    deps = build_deps(tokened)
    yield testing.TestClient(create_app(tokened, deps))
    deps.db.dispose()


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.53", "::1", "::ffff:127.0.0.1"])
def test_without_a_token_loopback_clients_may_scrape(client, address):
    result = client.simulate_get("/metrics", remote_addr=address)
    assert result.status_code == 200 and "orders_queue_depth" in result.text


@pytest.mark.parametrize("address", ["10.0.0.5", "203.0.113.9", "2001:db8::1", "::ffff:10.0.0.5", "not-an-ip"])
def test_without_a_token_other_clients_get_403(client, admin_headers, deps, address):
    """Forwarded headers are not believed, and an API key is no credential here."""
    headers = {**admin_headers, "X-Forwarded-For": "127.0.0.1", "Forwarded": "for=127.0.0.1"}
    with no_writes(deps.db):
        result = client.simulate_get("/metrics", remote_addr=address, headers=headers)
    assert result.status_code == 403 and result.json["error"]["code"] == "FORBIDDEN", result.text
    assert "orders_" not in result.text


@pytest.mark.parametrize(
    ("headers", "address"),
    [
        ({}, "127.0.0.1"),  # loopback is not enough once a token is set
        ({"Authorization": "Bearer wrong"}, "127.0.0.1"),
        ({"Authorization": "Bearer scrape-s3cret-and-more"}, "10.0.0.5"),
        ({"Authorization": "Basic scrape-s3cret"}, "10.0.0.5"),
        ({"Authorization": "Bearer ünïcode"}, "10.0.0.5"),
    ],
)
def test_with_a_token_anything_else_is_401(token_client, admin, headers, address):
    result = token_client.simulate_get("/metrics", remote_addr=address, headers=headers)
    assert result.status_code == 401 and result.json["error"]["code"] == "UNAUTHORIZED", result.text
    assert result.headers["www-authenticate"].startswith("Bearer")
    with_api_key = token_client.simulate_get("/metrics", remote_addr=address, headers=auth(admin))
    assert with_api_key.status_code == 401


@pytest.mark.parametrize("address", ["10.0.0.5", "127.0.0.1"])
def test_with_a_token_the_token_reads_from_anywhere(token_client, address):
    result = token_client.simulate_get(
        "/metrics", remote_addr=address, headers={"Authorization": "Bearer scrape-s3cret"}
    )
    assert result.status_code == 200 and "orders_queue_depth" in result.text


def test_an_unknown_peer_is_not_loopback():
    """A Unix-socket peer (empty ``REMOTE_ADDR``) is not known to be local."""
    assert not is_loopback("") and not is_loopback("localhost")


def test_metrics_token_is_read_from_the_environment():
    assert Settings.from_env({"METRICS_TOKEN": "t"}).metrics_token == "t"
    assert Settings.from_env({}).metrics_token is None
    assert Settings.from_env({"METRICS_TOKEN": ""}).metrics_token is None
