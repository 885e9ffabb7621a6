"""Events and webhooks end to end: the in-process API, a real worker per queue group, real beat
(its sweep every second), and a real receiving HTTP server on 127.0.0.1.

The module runs on queues of its own (``QUEUE_PREFIX``), so its workers and beat see only its
messages. Each test subscribes endpoints scoped to customers of its own, so it receives only its
own orders' events.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from falcon import testing
from sqlalchemy import select, update
from standardwebhooks.webhooks import Webhook

from api.app import build_deps, create_app
from api.deps import Deps
from config.settings import Settings
from models import Database, Event, WebhookDelivery
from models.migrate import upgrade
from models.types import utcnow
from services.events.record import add_event
from services.kernel.principal import SYSTEM
from services.webhooks.delivery import Attempt, DeliveryPolicy, send
from services.webhooks.dispatch import dispatch_events
from services.webhooks.endpoints import NewEndpoint, create_endpoint
from services.webhooks.retention import PurgedEvents, purge_old_events
from tests.conftest import auth, unique_customer
from tests.integration.helpers import brief_order, brief_payment, error_code
from tests.support.databases import fresh_database
from tests.support.polling import wait_for
from tests.support.processes import start_beat, start_worker, stop_process
from tests.support.receiver import Receiver

TIMEOUT_SECONDS = 1.0


@pytest.fixture(scope="module")
def hook_settings(settings: Settings) -> Settings:
    return settings.with_(
        queue_prefix=f"evt{secrets.token_hex(3)}-",
        webhook_timeout_seconds=TIMEOUT_SECONDS,
        webhook_backoff_base_seconds=0.2,
        webhook_backoff_max_seconds=1.0,
        webhook_sweep_interval_seconds=1,
        broker_visibility_timeout_seconds=5,
    )


@pytest.fixture(scope="module")
def hook_deps(hook_settings: Settings) -> Iterator[Deps]:
    deps = build_deps(hook_settings)
    yield deps
    deps.db.dispose()


@pytest.fixture(scope="module")
def hook_client(hook_settings: Settings, hook_deps: Deps) -> testing.TestClient:
    return testing.TestClient(create_app(hook_settings, hook_deps))


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


class Processes:
    def __init__(self, settings: Settings, run_dir: Path) -> None:
        self.settings, self.run_dir = settings, run_dir
        self.generation = 0
        self.main = start_worker(
            settings,
            run_dir / "evt-worker.log",
            queues="payments,orders,exports,maintenance",
            concurrency=1,
            name="evt",
        )
        self.hooks = self._start_hooks()
        self.beat = start_beat(settings, run_dir / "evt-beat.log")

    def _start_hooks(self) -> subprocess.Popen[bytes]:
        self.generation += 1
        return start_worker(
            self.settings,
            self.run_dir / "evt-hooks.log",
            queues="webhooks",
            concurrency=3,
            name=f"evthooks{self.generation}",
        )

    def kill_hooks(self) -> None:
        stop_process(self.hooks, sig=signal.SIGKILL)
        self.hooks = self._start_hooks()

    def stop(self) -> None:
        for process in (self.beat, self.hooks, self.main):
            stop_process(process)


@pytest.fixture(scope="module")
def processes(hook_settings: Settings, run_dir: Path) -> Iterator[Processes]:
    running = Processes(hook_settings, run_dir)
    yield running
    running.stop()


def subscribe(client: testing.TestClient, headers: dict[str, str], url: str, types: list[str], **extra: Any) -> dict:
    created = client.simulate_post(
        "/api/webhook-endpoints", json={"url": url, "eventTypes": types, **extra}, headers=headers
    )
    assert created.status_code == 201, created.text
    assert created.json["secret"].startswith("whsec_")
    return created.json


def events_of(receiver: Receiver, path: str) -> list[dict[str, Any]]:
    return [json.loads(request.body) for request in receiver.on(path)]


ORDER_TYPES = [
    "order.created",
    "order.status_changed",
    "order.payment_succeeded",
    "order.payment_failed",
    "order.cancelled",
    "order.item_changed",
]


def test_events_arrive_once_per_change_in_commit_order_signed(
    hook_client, admin_headers, make_key, make_offer, receiver, processes
) -> None:
    """Two orders, each through several changes: every change's event arrives once, each order's
    in the order of its changes; every signature verifies with the Standard Webhooks library; the
    feed (``GET /api/events``) lists the same events in the same order."""
    customer = unique_customer()
    path = f"/ok/{customer}"
    endpoint = subscribe(
        hook_client, admin_headers, receiver.url(path), [*ORDER_TYPES, "task.finished"], customerId=customer
    )
    offer = make_offer(price="10.00")
    first = hook_client.simulate_post("/api/orders", json=brief_order(offer, customer, price=10), headers=admin_headers)
    second = hook_client.simulate_post(
        "/api/orders", json=brief_order(offer, customer, price=10), headers=admin_headers
    )
    assert first.status_code == second.status_code == 201
    a, b = first.json["orderId"], second.json["orderId"]
    for status in ("processing", "shipped", "completed"):
        changed = hook_client.simulate_patch(
            f"/api/orders/{a}/status", json={"status": status, "reason": "test"}, headers=admin_headers
        )
        assert changed.status_code == 200, changed.text
    item = hook_client.simulate_get(f"/api/orders/{b}", headers=admin_headers).json["items"][0]["id"]
    cancelled = hook_client.simulate_post(
        "/api/orders/items",
        json={"orderId": b, "items": [{"itemId": item, "action": "cancel", "reason": "test"}]},
        headers=admin_headers,
    )
    assert cancelled.status_code == 200, cancelled.text

    expected = {
        a: [
            ("order.created", None),
            ("order.payment_succeeded", None),
            ("order.status_changed", "processing"),
            ("order.status_changed", "shipped"),
            ("order.status_changed", "completed"),
        ],
        b: [
            ("order.created", None),
            ("order.item_changed", None),
            ("order.status_changed", "cancelled"),
            ("order.cancelled", "cancelled"),
        ],
    }

    def order_events() -> dict[str, list[tuple[str, str | None]]]:
        found: dict[str, list[tuple[str, str | None]]] = {a: [], b: []}
        for event in events_of(receiver, path):
            if event["type"] != "task.finished":
                found[event["data"]["orderId"]].append((event["type"], event["data"].get("status")))
        return found

    def normalized() -> dict[str, list[tuple[str, str | None]]]:
        return {
            order: [
                (kind, status if kind in ("order.status_changed", "order.cancelled") else None) for kind, status in got
            ]
            for order, got in order_events().items()
        }

    wait_for(lambda: normalized() == expected, timeout=30, what="every order event, in order")
    # both checkout tasks finished in the worker: their task.finished events came too
    wait_for(
        lambda: {e["data"]["orderId"] for e in events_of(receiver, path) if e["type"] == "task.finished"} == {a, b},
        timeout=30,
        what="the checkout tasks' task.finished events",
    )

    def all_recorded() -> list[dict[str, Any]] | None:
        listed = hook_client.simulate_get(
            f"/api/webhook-endpoints/{endpoint['id']}/deliveries", params={"limit": 500}, headers=admin_headers
        ).json["value"]
        return listed if listed and {d["state"] for d in listed} == {"succeeded"} else None

    # Once every delivery is recorded as succeeded no attempt is left to come: count them now.
    deliveries = wait_for(all_recorded, timeout=30, what="every delivery recorded as succeeded")
    requests = receiver.on(path)
    ids = Counter(request.headers["webhook-id"] for request in requests)
    assert all(count == 1 for count in ids.values()), ids
    verifier = Webhook(endpoint["secret"])
    for request in requests:
        payload = verifier.verify(request.body, request.headers)
        assert payload["id"] == request.headers["webhook-id"]
        assert payload["timestamp"].endswith("Z")
    created = next(e for e in events_of(receiver, path) if e["type"] == "order.created" and e["data"]["orderId"] == a)
    assert created["data"]["totalAmount"] == 10.0 and created["data"]["items"][0]["offerId"] == offer
    assert '"totalAmount":10.00' in next(r.body for r in requests if json.loads(r.body)["id"] == created["id"])

    # The feed: the same events, in the same order per order.
    feed = hook_client.simulate_get("/api/events", params={"limit": 500}, headers=auth(make_key("customer", customer)))
    assert feed.status_code == 200, feed.text
    listed = [event["id"] for event in feed.json["value"]]
    delivered = [json.loads(request.body)["id"] for request in requests]
    for order in (a, b):
        of_order = {json.loads(r.body)["id"] for r in requests if json.loads(r.body)["data"].get("orderId") == order}
        assert [i for i in listed if i in of_order] == [i for i in delivered if i in of_order]

    assert len(deliveries) == len(requests)
    assert sorted(d["eventId"] for d in deliveries) == sorted(ids)


def test_a_receiver_that_fails_three_times_gets_the_event_with_the_same_webhook_id(
    hook_client, admin_headers, make_offer, receiver, processes
) -> None:
    customer = unique_customer()
    path = f"/flaky/3/{customer}"
    endpoint = subscribe(hook_client, admin_headers, receiver.url(path), ["order.created"], customerId=customer)
    placed = hook_client.simulate_post("/api/orders", json=brief_order(make_offer(), customer), headers=admin_headers)
    assert placed.status_code == 201
    wait_for(lambda: [r.status for r in receiver.on(path)] == [500, 500, 500, 200], timeout=30, what="4 attempts")
    requests = receiver.on(path)
    assert len({request.headers["webhook-id"] for request in requests}) == 1
    assert json.loads(requests[-1].body)["data"]["orderId"] == placed.json["orderId"]
    gaps = [later.at - earlier.at for earlier, later in zip(requests, requests[1:], strict=False)]
    assert all(gap >= 0.09 for gap in gaps), gaps  # backed off (base 0.2 s, jitter 0.5-1.0)

    def succeeded() -> dict | None:
        listed = hook_client.simulate_get(
            f"/api/webhook-endpoints/{endpoint['id']}/deliveries", headers=admin_headers
        ).json["value"]
        return listed[0] if listed and listed[0]["state"] == "succeeded" else None

    delivery = wait_for(succeeded, timeout=10, what="the delivery recorded as succeeded")
    assert delivery["attempts"] == 4 and delivery["lastStatusCode"] == 200
    assert delivery["eventId"] == requests[0].headers["webhook-id"]

    # Re-sent by hand: once more, with the same Webhook-Id.
    resent = hook_client.simulate_post(
        f"/api/webhook-endpoints/{endpoint['id']}/deliveries/{delivery['id']}/resend", headers=admin_headers
    )
    assert resent.status_code == 202, resent.text
    wait_for(lambda: len(receiver.on(path)) == 5, timeout=15, what="the re-sent delivery")
    assert receiver.on(path)[-1].headers["webhook-id"] == delivery["eventId"]


def test_past_its_retry_window_a_delivery_fails_for_good_and_the_endpoint_is_marked_failing(
    hook_client, hook_deps, admin_headers, make_offer, receiver, processes
) -> None:
    """A receiver that keeps failing: once the next attempt would fall after the delivery's retry
    window (24 h in production; moved into the past here), the delivery ends ``failed`` and its
    endpoint reads ``failing``."""
    customer = unique_customer()
    path = f"/flaky/1000/{customer}"
    endpoint = subscribe(hook_client, admin_headers, receiver.url(path), ["order.created"], customerId=customer)
    placed = hook_client.simulate_post("/api/orders", json=brief_order(make_offer(), customer), headers=admin_headers)
    assert placed.status_code == 201
    wait_for(lambda: len(receiver.on(path)) >= 1, timeout=30, what="a first failed attempt")
    with hook_deps.db.transaction() as session:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint["id"])
            .values(give_up_at=datetime.now(UTC) - timedelta(seconds=1))
        )

    def given_up() -> dict | None:
        listed = hook_client.simulate_get(
            f"/api/webhook-endpoints/{endpoint['id']}/deliveries", headers=admin_headers
        ).json["value"]
        return listed[0] if listed and listed[0]["state"] == "failed" else None

    delivery = wait_for(given_up, timeout=30, what="the delivery to fail for good")
    assert delivery["lastStatusCode"] == 500 and delivery["attempts"] >= 1
    shown = hook_client.simulate_get(f"/api/webhook-endpoints/{endpoint['id']}", headers=admin_headers)
    assert shown.status_code == 200 and shown.json["status"] == "failing", shown.text


def test_a_hanging_receiver_does_not_delay_another_endpoints_events(
    hook_client, admin_headers, make_offer, receiver, processes
) -> None:
    """One endpoint never answers (each attempt waits out the 1 s timeout); another endpoint
    subscribed to the same events gets all six of them promptly, not one per timeout."""
    customer = unique_customer()
    hanging, healthy = f"/hang/{customer}", f"/ok/{customer}"
    subscribe(hook_client, admin_headers, receiver.url(hanging), ["order.created"], customerId=customer)
    subscribe(hook_client, admin_headers, receiver.url(healthy), ["order.created"], customerId=customer)
    offer = make_offer()
    started = time.monotonic()
    for _ in range(6):
        placed = hook_client.simulate_post("/api/orders", json=brief_order(offer, customer), headers=admin_headers)
        assert placed.status_code == 201
    wait_for(lambda: len(receiver.on(healthy)) == 6, timeout=20, what="six events at the healthy endpoint")
    took = max(request.at for request in receiver.on(healthy)) - started
    # Serially behind the hanging endpoint it would take six timeouts (6 s) at least.
    assert took < 3 * TIMEOUT_SECONDS, took
    assert any(path == hanging for path, _ in receiver.started)


def test_a_worker_killed_mid_delivery_loses_no_event(
    hook_client, hook_deps, admin_headers, make_offer, receiver, processes
) -> None:
    customer = unique_customer()
    path = f"/slow/30/{customer}"  # the first attempt is held until after the kill
    endpoint = subscribe(hook_client, admin_headers, receiver.url(path), ["order.created"], customerId=customer)
    placed = hook_client.simulate_post("/api/orders", json=brief_order(make_offer(), customer), headers=admin_headers)
    assert placed.status_code == 201
    wait_for(lambda: any(p == path for p, _ in receiver.started), timeout=20, what="the first attempt to arrive")
    processes.kill_hooks()  # SIGKILL while the worker waits for the receiver's answer

    def delivered() -> list[WebhookDelivery] | None:
        with hook_deps.db.reader() as session:
            rows = session.scalars(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint["id"])).all()
        return rows if rows and all(row.state == "succeeded" for row in rows) else None

    rows = wait_for(delivered, timeout=60, what="the event delivered after the kill")
    assert [(row.state, row.attempts >= 2) for row in rows] == [("succeeded", True)]
    attempts = [p for p, _ in receiver.started if p == path]
    assert len(attempts) >= 2  # the killed attempt and the one after it
    heads = [r for r in receiver.requests if r.path == path]
    assert len({r.headers["webhook-id"] for r in heads}) == 1
    assert json.loads(heads[-1].body)["data"]["orderId"] == placed.json["orderId"]


def test_urls_that_resolve_to_private_addresses_are_refused(settings, deps, admin_headers) -> None:
    strict = settings.with_(webhook_allow_private_urls=False)
    client = testing.TestClient(create_app(strict, replace(deps, settings=strict)))
    for url in (
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "http://name-that-does-not-resolve.invalid/hook",
        "ftp://example.com/hook",
        "http://user:pw@example.com/hook",
    ):
        refused = client.simulate_post(
            "/api/webhook-endpoints", json={"url": url, "eventTypes": ["order.created"]}, headers=admin_headers
        )
        assert refused.status_code == 400, (url, refused.text)
        assert error_code(refused) == "VALIDATION_ERROR"
        assert refused.json["error"]["details"][0]["field"] == "url"
    unknown = client.simulate_post(
        "/api/webhook-endpoints",
        json={"url": "http://127.0.0.1/", "eventTypes": ["order.shipped"]},
        headers=admin_headers,
    )
    assert unknown.status_code == 400 and error_code(unknown) == "VALIDATION_ERROR"
    listed = client.simulate_get("/api/webhook-endpoints", headers=admin_headers).json["value"]
    assert not any("169.254" in e["url"] or "10.1.2.3" in e["url"] for e in listed)  # nothing half-written


def test_delivery_checks_the_address_again_and_follows_no_redirect(receiver) -> None:
    policy = DeliveryPolicy(TIMEOUT_SECONDS, 0.2, 1.0, timedelta(hours=1), allow_private=False)
    attempt = Attempt("whd_x", "we_x", receiver.url("/ok/again"), "whsec_" + "A" * 32, "evt_x", "{}", 1)
    refused = send(attempt, policy)
    assert not refused.ok and refused.error["code"] == "UNSAFE_ADDRESS"
    assert receiver.on("/ok/again") == []
    redirected = send(replace(attempt, url=receiver.url("/redirect/x")), replace(policy, allow_private=True))
    assert (
        not redirected.ok
        and redirected.status_code == 302
        and "redirects are not followed" in redirected.error["message"]
    )


def test_customer_keys_see_and_subscribe_to_their_own_events_only(
    client, deps, admin_headers, make_key, make_offer, settings
) -> None:
    mine, theirs = unique_customer(), unique_customer()
    key = auth(make_key("customer", mine))
    other = auth(make_key("customer", theirs))
    forbidden = client.simulate_post(
        "/api/webhook-endpoints",
        json={"url": "http://127.0.0.1:9/x", "eventTypes": ["order.created"], "customerId": theirs},
        headers=key,
    )
    assert forbidden.status_code == 403 and error_code(forbidden) == "FORBIDDEN"
    own = client.simulate_post(
        "/api/webhook-endpoints", json={"url": "http://127.0.0.1:9/x", "eventTypes": ["order.created"]}, headers=key
    )
    assert own.status_code == 201 and own.json["customerId"] == mine
    staff = client.simulate_post(
        "/api/webhook-endpoints",
        json={"url": "http://127.0.0.1:9/y", "eventTypes": ["order.created"]},
        headers=admin_headers,
    )
    assert staff.status_code == 201 and "customerId" not in staff.json
    assert [e["id"] for e in client.simulate_get("/api/webhook-endpoints", headers=key).json["value"]] == [
        own.json["id"]
    ]
    assert client.simulate_get(f"/api/webhook-endpoints/{staff.json['id']}", headers=key).status_code == 404
    assert client.simulate_get(f"/api/webhook-endpoints/{own.json['id']}", headers=other).status_code == 404
    assert client.simulate_get(f"/api/webhook-endpoints/{own.json['id']}/deliveries", headers=other).status_code == 404
    assert "secret" not in client.simulate_get(f"/api/webhook-endpoints/{own.json['id']}", headers=key).json

    offer = make_offer()
    for customer, headers in ((mine, key), (theirs, other), (mine, key)):
        placed = client.simulate_post("/api/orders", json=brief_order(offer, customer), headers=headers)
        assert placed.status_code == 201
    dispatch_events(deps.db, retry_window=timedelta(hours=1))
    seen = client.simulate_get("/api/events", params={"limit": 500}, headers=key).json["value"]
    assert seen and {event["data"].get("customerId", mine) for event in seen} == {mine}
    theirs_seen = client.simulate_get("/api/events", params={"limit": 500}, headers=other).json["value"]
    assert len([e for e in seen if e["type"] == "order.created"]) == 2
    assert len([e for e in theirs_seen if e["type"] == "order.created"]) == 1
    probe = client.simulate_get("/api/events", params={"after": theirs_seen[0]["id"]}, headers=key)
    assert probe.status_code == 400 and error_code(probe) == "INVALID_QUERY"

    deleted = client.simulate_delete(f"/api/webhook-endpoints/{own.json['id']}", headers=key)
    assert deleted.status_code == 204
    assert client.simulate_get(f"/api/webhook-endpoints/{own.json['id']}", headers=key).status_code == 404
    assert (
        client.simulate_delete(f"/api/webhook-endpoints/{staff.json['id']}", headers=admin_headers).status_code == 204
    )


def test_the_event_feed_pages_in_event_order(client, deps, admin_headers, make_key, make_offer) -> None:
    customer = unique_customer()
    key = auth(make_key("customer", customer))
    offer = make_offer()
    orders = []
    for _ in range(5):
        placed = client.simulate_post("/api/orders", json=brief_order(offer, customer), headers=key)
        orders.append(placed.json["orderId"])
        client.simulate_patch(
            f"/api/orders/{placed.json['orderId']}/status",
            json={"status": "cancelled", "reason": "t"},
            headers=admin_headers,
        )
    dispatch_events(deps.db, retry_window=timedelta(hours=1))
    pages, url, seen = 0, "/api/events?limit=4", []
    while url:
        parts = urlsplit(url)
        page = client.simulate_get(parts.path, query_string=parts.query, headers=key)
        assert page.status_code == 200, page.text
        seen += page.json["value"]
        url = page.json.get("nextLink")
        pages += 1
    assert pages >= 4  # at least 15 events (created, status_changed, cancelled per order) by 4
    assert len({event["id"] for event in seen}) == len(seen)
    # (a worker of the session may run the orders' checkout tasks meanwhile: their task.finished
    # events come at any point after order.created)
    per_order = {
        order: [e["type"] for e in seen if e.get("orderId") == order and e["type"] != "task.finished"]
        for order in orders
    }
    assert all(kinds == ["order.created", "order.status_changed", "order.cancelled"] for kinds in per_order.values()), (
        per_order
    )
    firsts = [next(i for i, e in enumerate(seen) if e.get("orderId") == order) for order in orders]
    assert firsts == sorted(firsts)  # orders placed one after the other come in that order
    only = client.simulate_get("/api/events", params={"type": "order.cancelled"}, headers=key).json["value"]
    assert [e["orderId"] for e in only] == orders
    # polling after the last event seen: nothing new, and no nextLink
    last = client.simulate_get("/api/events", params={"after": seen[-1]["id"]}, headers=key)
    assert last.status_code == 200 and last.json == {"value": []}


def test_a_customer_key_without_staff_role_cannot_see_another_customers_delivery(client, make_key) -> None:
    key = auth(make_key("customer", unique_customer()))
    missing = client.simulate_post("/api/webhook-endpoints/we_missing/deliveries/whd_missing/resend", headers=key)
    assert missing.status_code == 404 and error_code(missing) == "NOT_FOUND"


def test_payments_and_exports_write_their_events(hook_client, hook_deps, admin_headers, make_offer, processes) -> None:
    """A captured payment, a declined one and a finished export each leave their event, in the
    transaction that settled them (read back through the feed once dispatched)."""
    customer = unique_customer()
    offer = make_offer()
    with hook_deps.db.reader() as session:  # the feed from here on (the session's earlier events are many)
        start = session.scalar(select(Event.id).where(Event.position.is_not(None)).order_by(Event.position.desc()))
    paid = hook_client.simulate_post("/api/orders", json=brief_order(offer, customer), headers=admin_headers).json
    declined = hook_client.simulate_post("/api/orders", json=brief_order(offer, customer), headers=admin_headers).json
    for order, token in ((paid, "tok_visa"), (declined, "tok_chargeDeclined")):
        queued = hook_client.simulate_post(
            "/api/orders/payment", json=brief_payment(order["orderId"], token=token), headers=admin_headers
        )
        assert queued.status_code == 202, queued.text
    export = hook_client.simulate_post("/api/orders/export", json={"format": "csv"}, headers=admin_headers)
    assert export.status_code == 202, export.text

    def feed(**params: str) -> list[dict[str, Any]]:
        since = {"after": start} if start else {}
        query = {"limit": 500, **since, **params}
        return hook_client.simulate_get("/api/events", params=query, headers=admin_headers).json["value"]

    def of(order: dict[str, Any]) -> list[str]:
        return [e["type"] for e in feed() if e.get("orderId") == order["orderId"] and e["type"] != "task.finished"]

    wait_for(
        lambda: of(paid) == ["order.created", "order.payment_succeeded", "order.status_changed"],
        timeout=30,
        what="the paid order's events",
    )
    wait_for(lambda: of(declined) == ["order.created", "order.payment_failed"], timeout=30, what="the decline's event")
    failed = next(e for e in feed() if e["type"] == "order.payment_failed" and e["orderId"] == declined["orderId"])
    assert failed["data"]["action"] == "process" and failed["data"]["reason"]
    ready = wait_for(
        lambda: [e for e in feed(type="export.ready") if e["data"]["taskId"] == export.json["taskId"]],
        timeout=30,
        what="export.ready",
    )
    assert ready[0]["data"]["format"] == "csv" and ready[0]["data"]["rows"] >= 2
    finished = wait_for(
        lambda: [e for e in feed(type="task.finished") if e["data"]["taskId"] == export.json["taskId"]],
        timeout=30,
        what="the export's task.finished",
    )
    assert finished[0]["data"] == {
        "taskId": export.json["taskId"],
        "type": "export",
        "state": "succeeded",
        "orderId": None,
        "errorCode": None,
    }


def test_old_events_go_with_their_finished_deliveries(settings, run_dir) -> None:
    """Housekeeping's part: events past their retention are deleted with their finished (or given
    up) deliveries; one still pending within its retry window keeps its event for a later run.
    On a database of its own (the purge is global)."""
    with fresh_database(os.environ.get("DATABASE_URL"), run_dir) as url:
        own = settings.with_(database_url=url)
        upgrade(own)
        db = Database.connect(own)
        try:
            endpoint = create_endpoint(
                db, SYSTEM, NewEndpoint("http://127.0.0.1:9/r", ["order.created"]), allow_private=True
            )
            with db.connection() as conn:
                for index in range(3):
                    add_event(conn, "order.created", order_id=f"ord_r{index}", customer_id=None, data={"i": index})
            dispatch_events(db, retry_window=timedelta(hours=1))
            later = utcnow() + timedelta(days=31)
            with db.transaction() as session:
                rows = session.scalars(
                    select(WebhookDelivery)
                    .where(WebhookDelivery.endpoint_id == endpoint.id)
                    .order_by(WebhookDelivery.position)
                ).all()
                rows[0].state = "succeeded"
                rows[1].state = "pending"  # given up long before `later` (a one-hour window)
                rows[2].state = "pending"
                rows[2].give_up_at = later + timedelta(hours=1)  # re-sent: still retrying then
            assert purge_old_events(db, older_than=timedelta(days=1)) == PurgedEvents(0, 0)  # none old yet
            assert purge_old_events(db, older_than=timedelta(days=30), now=later) == PurgedEvents(2, 2)
            with db.reader() as session:
                assert session.scalars(select(Event.order_id)).all() == ["ord_r2"]
        finally:
            db.dispose()


def test_a_delivery_connects_to_the_address_it_checked(receiver, monkeypatch) -> None:
    """The name is resolved once, by the check, and the connection goes to that address with the
    URL's host in ``Host``: a DNS answer changed after the check cannot redirect it (here the
    name does not resolve at all, so a second lookup would fail)."""
    from services.webhooks import delivery

    checked: list[str] = []

    def pinned(url: str, *, allow_private: bool) -> list[str]:
        checked.append(url)
        return ["127.0.0.1"]

    monkeypatch.setattr(delivery, "check_destination", pinned)
    policy = DeliveryPolicy(TIMEOUT_SECONDS, 0.2, 1.0, timedelta(hours=1), allow_private=False)
    url = f"http://hooks.invalid:{receiver.port}/ok/pinned?x=1"
    attempt = Attempt("whd_p", "we_p", url, "whsec_" + "A" * 32, "evt_p", '{"a":1}', 1)
    outcome = send(attempt, policy)
    assert outcome.ok, outcome
    assert checked == [url]
    (request,) = receiver.on("/ok/pinned?x=1")
    assert request.headers["host"] == f"hooks.invalid:{receiver.port}" and request.body == '{"a":1}'
