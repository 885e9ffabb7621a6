"""Rate limits per API key (``services.access.rate_limits``, ``api.middleware.rate_limit``).

Shown here: the one-round-trip storage agrees with the ``limits`` library's own Redis storage;
the headers and the 429 envelope in process; exactly the limit answered across two gunicorn
processes sharing one Redis; requests let through (and counted in ``/metrics``) while Redis is
down, without a long wait per request.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import limits
import pytest
import redis
import requests
from falcon import testing
from limits.storage import RedisStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from api.app import create_app
from services.access.rate_limits import OneTripRedisStorage, RateLimiter
from tests.conftest import auth, unique_customer
from tests.support.polling import wait_for
from tests.support.processes import start_web, stop_process
from workers.embedded_redis import EmbeddedRedis, free_port

HEADERS = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")


def test_one_trip_storage_counts_as_the_library_does(redis_url):
    """Our storage and the library's, on the same Redis: the same decisions and the same remaining counts."""
    item = limits.parse("7/minute")
    ours = SlidingWindowCounterRateLimiter(OneTripRedisStorage(redis_url))
    stock = SlidingWindowCounterRateLimiter(RedisStorage(redis_url, key_prefix=f"stock-{secrets.token_hex(4)}"))
    key = f"key_{secrets.token_hex(4)}"
    seen_ours, seen_stock = [], []
    for _ in range(10):
        seen_ours.append((ours.hit(item, key), ours.get_window_stats(item, key).remaining))
        seen_stock.append((stock.hit(item, key), stock.get_window_stats(item, key).remaining))
    assert seen_ours == seen_stock
    assert [allowed for allowed, _ in seen_ours] == [True] * 7 + [False] * 3
    assert [remaining for _, remaining in seen_ours] == [6, 5, 4, 3, 2, 1, 0, 0, 0, 0]


def count_redis_commands(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """From now on, one entry per command (or pipeline) this process sends to any Redis."""
    sent: list[int] = []
    real = redis.connection.Connection.send_packed_command

    def counting(self, command, check_health=True):  # noqa: ANN001, ANN202
        sent.append(1)
        return real(self, command, check_health)

    monkeypatch.setattr(redis.connection.Connection, "send_packed_command", counting)
    return sent


def test_one_check_is_one_round_trip(redis_url, monkeypatch):
    limiter = RateLimiter(redis_url, lambda role: "100/minute")
    key = f"key_{secrets.token_hex(4)}"
    limiter.check(key, "customer")  # scripts loaded, connection open
    sent = count_redis_commands(monkeypatch)
    for _ in range(5):
        assert limiter.check(key, "customer").allowed
    assert len(sent) == 5


def test_far_from_the_limit_one_round_trip_serves_many_requests(redis_url, monkeypatch):
    """With many requests left, a process takes them from Redis several at a time (a lease of at
    most 32, and at most 1/64 of what remains); near the limit every request is asked on its own,
    so the limit is still exact."""
    limiter = RateLimiter(redis_url, lambda role: "100000/minute" if role == "admin" else "50/minute")
    busy, near = f"key_{secrets.token_hex(4)}", f"key_{secrets.token_hex(4)}"
    limiter.check(busy, "admin")  # scripts loaded, connection open
    sent = count_redis_commands(monkeypatch)
    remaining = [limiter.check(busy, "admin").remaining for _ in range(320)]
    assert len(sent) <= 11, len(sent)  # 320 requests in leases of 32
    assert remaining == sorted(remaining, reverse=True) and remaining[-1] == 100000 - 321

    sent.clear()
    decisions = [limiter.check(near, "customer") for _ in range(60)]
    assert [decision.allowed for decision in decisions] == [True] * 50 + [False] * 10
    # 50 left is never enough for a lease: every check goes to Redis (redis-py may add a health-check PING)
    assert len(sent) >= 60, len(sent)
    assert [decision.remaining for decision in decisions[:50]] == list(range(49, -1, -1))


def test_a_flushed_redis_loads_the_scripts_again(redis_url):
    limiter = RateLimiter(redis_url, lambda role: "3/minute")
    key = f"key_{secrets.token_hex(4)}"
    assert limiter.check(key, "customer").remaining == 2
    redis.Redis.from_url(redis_url).script_flush()
    decision = limiter.check(key, "customer")
    assert decision.checked and decision.remaining == 1  # counted once, not twice


@pytest.fixture
def limited_client(settings, deps, make_key):
    """The app with small limits of its own (3 a minute for customers, none for ops)."""
    small = settings.with_(rate_limit_customer="3/minute", rate_limit_ops="off")
    limiter = RateLimiter(settings.redis_url, small.rate_limit_for)
    app = create_app(small, dataclasses.replace(deps, limiter=limiter))
    yield testing.TestClient(app)
    limiter.close()


def test_headers_then_429_in_the_envelope(limited_client, make_key):
    key = make_key("customer", unique_customer())
    origin = {"Origin": "https://shop.example"}
    answers = [limited_client.simulate_get("/api/orders", headers={**auth(key), **origin}) for _ in range(5)]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429, 429]
    assert [answer.headers["RateLimit-Remaining"] for answer in answers] == ["2", "1", "0", "0", "0"]
    for answer in answers:
        assert answer.headers["RateLimit-Limit"] == "3"
        assert 0 < int(answer.headers["RateLimit-Reset"]) <= 60
        exposed = answer.headers["Access-Control-Expose-Headers"]
        assert all(name in exposed for name in ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"))
    refused = answers[3]
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert refused.json["error"]["code"] == "RATE_LIMITED"
    assert refused.json["error"]["requestId"] == refused.headers["X-Request-Id"]
    # Another key has its own count; a POST past the limit claims no Idempotency-Key.
    other = make_key("customer", unique_customer())
    assert limited_client.simulate_get("/api/orders", headers=auth(other)).headers["RateLimit-Remaining"] == "2"
    posted = limited_client.simulate_post(
        "/api/orders", json={}, headers={**auth(key), "Idempotency-Key": "over-the-limit"}
    )
    assert posted.status_code == 429


def test_no_key_no_count_and_roles_without_a_limit(limited_client, make_key):
    assert "RateLimit-Limit" not in limited_client.simulate_get("/api/orders").headers  # 401: no key to count
    ops = make_key("ops")
    for _ in range(5):
        answer = limited_client.simulate_get("/api/orders", headers=auth(ops))
        assert answer.status_code == 200 and "RateLimit-Limit" not in answer.headers


def test_the_openapi_document_declares_429_and_the_headers(client):
    doc = client.simulate_get("/api/openapi.json").json
    get_order = doc["paths"]["/api/orders/{order_id}"]["get"]["responses"]
    assert get_order["429"]["headers"]["Retry-After"]["required"]
    assert get_order["429"]["headers"]["RateLimit-Reset"]["required"]
    assert not get_order["200"]["headers"]["RateLimit-Remaining"]["required"]
    assert "429" not in doc["paths"]["/healthz"]["get"]["responses"]


LIMIT = 20
REQUESTS = 32


def test_two_gunicorn_processes_share_one_limit(settings, make_key, tmp_path: Path):
    """Two web processes on one Redis: exactly LIMIT of REQUESTS are answered 2xx inside the window."""
    ports = [free_port(), free_port()]
    webs = [
        start_web(settings, port, tmp_path / f"web-{port}.log", workers=1, RATE_LIMIT_CUSTOMER=f"{LIMIT}/minute")
        for port in ports
    ]
    try:
        for port in ports:
            wait_for(lambda port=port: _healthy(port), timeout=60, what=f"gunicorn on {port}")
        key = make_key("customer", unique_customer())

        def call(n: int) -> requests.Response:
            port = ports[n % 2]
            return requests.get(f"http://127.0.0.1:{port}/api/orders?$top=1", headers=auth(key), timeout=10)

        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(call, range(REQUESTS)))
        elapsed = time.monotonic() - started
    finally:
        for web in webs:
            stop_process(web)
    statuses = [answer.status_code for answer in answers]
    assert elapsed < 60  # all inside one window
    assert statuses.count(200) == LIMIT and statuses.count(429) == REQUESTS - LIMIT, statuses
    for answer in answers:
        assert answer.headers["RateLimit-Limit"] == str(LIMIT)
        assert 0 <= int(answer.headers["RateLimit-Remaining"]) < LIMIT
        assert 0 < int(answer.headers["RateLimit-Reset"]) <= 60
        if answer.status_code == 429:
            assert answer.headers["RateLimit-Remaining"] == "0"
            assert 0 < int(answer.headers["Retry-After"]) <= 60
            assert answer.json()["error"]["code"] == "RATE_LIMITED"
    remaining = sorted(int(a.headers["RateLimit-Remaining"]) for a in answers if a.status_code == 200)
    assert remaining == list(range(LIMIT))  # each count seen once: one counter for both processes


def _healthy(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _unchecked(base: str) -> float:
    text = requests.get(f"{base}/metrics", timeout=5).text
    match = re.search(r"^orders_rate_limit_unchecked_total (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_requests_pass_and_are_counted_while_redis_is_down(settings, make_key, tmp_path: Path):
    own = EmbeddedRedis(tmp_path / "redis")
    own_url = own.start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = start_web(settings.with_(redis_url=own_url), port, tmp_path / "web.log", workers=1)
    try:
        wait_for(lambda: _healthy(port), timeout=60, what="gunicorn")
        key = make_key("customer", unique_customer())
        before = requests.get(f"{base}/api/orders", headers=auth(key), timeout=10)
        assert before.status_code == 200 and before.headers["RateLimit-Limit"] == "6000"
        counted = _unchecked(base)
        own.stop()
        timings = []
        for _ in range(20):
            started = time.monotonic()
            answer = requests.get(f"{base}/api/orders", headers=auth(key), timeout=10)
            timings.append(time.monotonic() - started)
            assert answer.status_code == 200, answer.text
            assert "RateLimit-Limit" not in answer.headers
        assert _unchecked(base) - counted == 20
        assert max(timings) < 1.0, timings
    finally:
        stop_process(web)
        own.stop()


def test_a_silent_redis_costs_one_short_timeout_then_nothing():
    """A Redis host that accepts and never answers: one check waits the timeout, the next ones skip it."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        limiter = RateLimiter(f"redis://127.0.0.1:{port}/0", lambda role: "10/minute", timeout=0.2, retry_seconds=30)
        timings = []
        for _ in range(50):
            started = time.monotonic()
            decision = limiter.check("key_silent", "customer")
            timings.append(time.monotonic() - started)
            assert decision is not None and decision.allowed and not decision.checked
    assert 0.15 < timings[0] < 1.0, timings[0]
    assert sum(timings[1:]) < 0.05, timings[1:5]
