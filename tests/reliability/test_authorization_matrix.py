"""The authorization matrix: every role × every route of ``api/app.py`` × own/other customer's
resources, against the roles of API.md.

- ``admin``: everything. ``ops``: all orders, status changes, bulk cancel, exports, metrics,
  offers; not key management. ``customer`` (bound to one ``customerId``): create and pay its own
  orders, read its own orders and tasks, act on its own items (bulk cancel is not among them);
  another customer's order or task answers 404 (its existence is not revealed), an operation the
  role lacks answers 403.
- No key or a revoked key: 401 on every private route.
- Public routes (health, readiness, Prometheus metrics, OpenAPI and docs, the order-states
  document, checkout pages, sandbox pages, webhooks, export files) answer the same whoever calls:
  their authentication is a signature, a signed link, an unguessable id or (metrics) the
  loopback address or METRICS_TOKEN, never the API key.

The routes are read from the app's router (``falcon.inspect``), so a route added without a row
here fails :func:`test_every_route_has_a_matrix_row`. Each request that changes something gets a
fresh order of its own, so one role's call never decides another's answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import falcon.inspect
import pytest
from falcon import testing
from sqlalchemy import select

from models import OrderItem, WebhookDelivery
from services.access.keys import IssuedKey, issue_key
from services.jobs.machine import finish_job
from services.kernel.principal import SYSTEM, Principal
from services.payments.execution import execute_payment
from services.payments.requests import PaymentRequest, request_payment
from services.webhooks.dispatch import dispatch_events
from services.webhooks.endpoints import NewEndpoint, create_endpoint
from tests.conftest import auth, unique_customer
from tests.integration.helpers import brief_order, brief_payment, no_writes, order_row

ROLES = ("admin", "ops", "customer_own", "customer_other", "no_key", "revoked_key")
PRICE = Decimal("99.99")

# Expected answers by role: a status class ("2xx"), an exact status, or the statuses allowed.
Expected = int | str | tuple[int, ...]
ANONYMOUS = {"no_key": 401, "revoked_key": 401}
STAFF = {"admin": "2xx", "ops": "2xx", "customer_own": 403, "customer_other": 403, **ANONYMOUS}
ADMIN = {"admin": "2xx", "ops": 403, "customer_own": 403, "customer_other": 403, **ANONYMOUS}
OWNER = {"admin": "2xx", "ops": "2xx", "customer_own": "2xx", "customer_other": 404, **ANONYMOUS}
ANY_KEY = {"admin": "2xx", "ops": "2xx", "customer_own": "2xx", "customer_other": "2xx", **ANONYMOUS}


def public(expected: Expected) -> dict[str, Expected]:
    """A public route answers the same to every caller, key or no key."""
    return dict.fromkeys(ROLES, expected)


@dataclass
class World:
    """Customer A (``customer_own`` acts on A's resources; ``customer_other`` is customer B acting
    on A's), the keys of every role, and a way to make fresh orders of A."""

    client: testing.TestClient
    deps: Any
    offer: str
    customer: str
    keys: dict[str, str | None]
    admin: IssuedKey

    def headers(self, role: str) -> dict[str, str]:
        key = self.keys[role]
        return auth(key) if key else {}

    def order(self) -> dict[str, Any]:
        """A fresh ``pending_payment`` order of customer A (its create response)."""
        placed = self.client.simulate_post(
            "/api/orders", json=brief_order(self.offer, self.customer), headers=auth(self.admin)
        )
        assert placed.status_code == 201, placed.text
        return placed.json

    def paid_order(self) -> str:
        """A fresh order of customer A, paid in-process through the sandbox gateway."""
        order_id = self.order()["orderId"]
        queued = request_payment(
            self.deps.db, SYSTEM, PaymentRequest(order_id, "process", "credit_card", "tok_visa", PRICE)
        )
        execute_payment(self.deps.db, self.deps.gateways, {"transactionId": queued.transaction_id})
        return order_id

    def item_of(self, order: dict[str, Any]) -> str:
        with self.deps.db.reader() as session:
            return session.scalar(select(OrderItem.id).where(OrderItem.order_id == order["orderId"]))


# A request for a role: (method, path, keyword arguments of ``simulate_request``).
Build = Callable[[World, str], tuple[str, dict[str, Any]]]


def _get(path: str) -> Build:
    return lambda world, role: (path, {})


def _order_get(suffix: str = "", **params: str) -> Build:
    return lambda world, role: (f"/api/orders/{world.order()['orderId']}{suffix}", {"params": params})


def _json(path: str, body: Callable[[World, str], dict[str, Any]]) -> Build:
    return lambda world, role: (path, {"json": body(world, role)})


def _fresh_key(world: World, role: str) -> tuple[str, dict[str, Any]]:
    return f"/api/keys/{issue_key(world.deps.db, 'ops').id}", {}


def _task_of_order(world: World, role: str) -> tuple[str, dict[str, Any]]:
    return f"/api/tasks/{world.order()['taskId']}", {}


def _finished_task_events(world: World, role: str) -> tuple[str, dict[str, Any]]:
    """The event stream of an order's task, finished here (no worker runs in this module, and a
    stream in process lasts as long as its task)."""
    task_id = world.order()["taskId"]
    finish_job(world.deps.db, task_id, error={"code": "INTERNAL_ERROR", "message": "matrix", "details": []})
    return f"/api/tasks/{task_id}/events", {}


def _items_body(world: World, role: str) -> dict[str, Any]:
    order = world.order()
    item = world.item_of(order)
    return {"orderId": order["orderId"], "items": [{"itemId": item, "action": "verify", "reason": "matrix"}]}


_SHARED_ENDPOINT: dict[str, str] = {}


def _endpoint_of_a(world: World, *, fresh: bool = False) -> str:
    """A webhook endpoint of customer A (made with A's own key): a fresh one to delete, else one
    made once (a customer has at most 20)."""
    if not fresh and world.customer in _SHARED_ENDPOINT:
        return _SHARED_ENDPOINT[world.customer]
    principal = Principal(key_id="matrix", role="customer", customer_id=world.customer)
    endpoint = NewEndpoint("http://127.0.0.1:9/matrix", ["order.created"])
    endpoint_id = create_endpoint(world.deps.db, principal, endpoint, allow_private=True).id
    if not fresh:
        _SHARED_ENDPOINT[world.customer] = endpoint_id
    return endpoint_id


def _endpoint_path(suffix: str = "", *, fresh: bool = False) -> Build:
    return lambda world, role: (f"/api/webhook-endpoints/{_endpoint_of_a(world, fresh=fresh)}{suffix}", {})


def _delivery_to_resend(world: World, role: str) -> tuple[str, dict[str, Any]]:
    endpoint_id = _endpoint_of_a(world)
    world.order()
    dispatch_events(world.deps.db, retry_window=timedelta(hours=1))
    with world.deps.db.reader() as session:
        delivery_id = session.scalar(select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == endpoint_id))
    return f"/api/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/resend", {}


MATRIX: dict[tuple[str, str], tuple[Build, dict[str, Expected]]] = {
    # Public: liveness, readiness (DB and broker are up), Prometheus text, the contract.
    ("GET", "/healthz"): (_get("/healthz"), public(200)),
    ("GET", "/readyz"): (_get("/readyz"), public(200)),
    # Its credential is the socket address (the test client is loopback) or METRICS_TOKEN, never
    # an API key: see tests/integration/test_metrics.py for the refusals.
    ("GET", "/metrics"): (_get("/metrics"), public(200)),
    ("GET", "/api/openapi.json"): (_get("/api/openapi.json"), public(200)),
    ("GET", "/api/docs"): (_get("/api/docs"), public(200)),
    ("GET", "/api/meta/order-states"): (_get("/api/meta/order-states"), public(200)),
    # Orders: customers list their own (scoping checked below) and place their own.
    ("GET", "/api/orders"): (_get("/api/orders"), ANY_KEY),
    ("GET", "/api/orders/$count"): (_get("/api/orders/$count"), ANY_KEY),  # customers count their own
    (
        "POST",
        "/api/orders",
    ): (
        _json("/api/orders", lambda world, role: brief_order(world.offer, world.customer)),
        {**OWNER, "customer_other": 403},  # B may not place an order in A's name (no A order is named)
    ),
    (
        "GET",
        "/api/orders/metrics",
    ): (
        lambda world, role: ("/api/orders/metrics", {"params": {"startDate": "2026-01-01", "endDate": "2026-12-31"}}),
        STAFF,
    ),
    ("GET", "/api/orders/{order_id}"): (_order_get(), OWNER),
    (
        "PATCH",
        "/api/orders/{order_id}/status",
    ): (
        lambda world, role: (
            f"/api/orders/{world.order()['orderId']}/status",
            {"json": {"status": "cancelled", "reason": "matrix"}},
        ),
        STAFF,  # the role is checked before the order: a customer learns nothing about the id
    ),
    ("POST", "/api/orders/items"): (_json("/api/orders/items", _items_body), OWNER),
    (
        "POST",
        "/api/orders/bulk-cancel",
    ): (
        _json("/api/orders/bulk-cancel", lambda world, role: {"orderIds": [world.order()["orderId"]], "reason": "m"}),
        # API.md lists bulk cancel under ops: a customer key is 403, even for its own orders (it
        # cancels items through /api/orders/items); see test_customers_may_not_bulk_cancel.
        STAFF,
    ),
    ("POST", "/api/orders/export"): (_json("/api/orders/export", lambda world, role: {"format": "csv"}), STAFF),
    # Settlement reports compare the gateways' ledgers with ours: operators only.
    ("GET", "/api/reconciliation/reports"): (_get("/api/reconciliation/reports"), STAFF),
    (
        "POST",
        "/api/orders/payment",
    ): (_json("/api/orders/payment", lambda world, role: brief_payment(world.order()["orderId"])), OWNER),
    # Checkout pages: public (a browser follows paymentUrl; order ids are unguessable).
    # 202 while the checkout task has not made the hosted page yet, 303 to it once it has.
    ("GET", "/api/orders/{order_id}/checkout"): (_order_get("/checkout"), public((202, 303))),
    ("GET", "/api/orders/{order_id}/checkout/complete"): (_order_get("/checkout/complete"), public(400)),
    ("GET", "/api/orders/{order_id}/checkout/cancelled"): (_order_get("/checkout/cancelled"), public(200)),
    # Webhooks authenticate by signature: an unsigned event is refused whoever sends it.
    ("POST", "/api/payments/webhooks/{gateway_id}"): (
        _json("/api/payments/webhooks/sandbox", lambda world, role: {"type": "payment.succeeded"}),
        public(400),
    ),
    ("GET", "/sandbox/checkout/{key}/{session_id}"): (_get("/sandbox/checkout/k_unknown/cs_unknown"), public(404)),
    ("POST", "/sandbox/checkout/{key}/{session_id}/{decision}"): (
        _get("/sandbox/checkout/k_unknown/cs_unknown/pay"),
        public(404),
    ),
    # Export files authenticate by their signed link: an unsigned one is refused whoever asks.
    ("GET", "/api/exports/{export_id}/file"): (_get("/api/exports/exp_unknown/file"), public(403)),
    ("HEAD", "/api/exports/{export_id}/file"): (_get("/api/exports/exp_unknown/file"), public(403)),
    # Offers: staff write; any key reads (a customer needs the price to place an order).
    ("GET", "/api/offers/{offer_id}"): (lambda world, role: (f"/api/offers/{world.offer}", {}), ANY_KEY),
    (
        "PUT",
        "/api/offers/{offer_id}",
    ): (
        lambda world, role: (
            f"/api/offers/offer_matrix_{role}",
            {"json": {"name": "Matrix", "price": 1.5, "stock": 3}},
        ),
        STAFF,
    ),
    ("GET", "/api/tasks/{task_id}"): (_task_of_order, OWNER),
    ("GET", "/api/tasks/{task_id}/events"): (_finished_task_events, OWNER),
    ("POST", "/api/keys"): (_json("/api/keys", lambda world, role: {"role": "ops"}), ADMIN),
    ("DELETE", "/api/keys/{key_id}"): (_fresh_key, ADMIN),
    # Webhooks: any key subscribes (a customer key to its own customer's events) and lists what it
    # may see; another customer's endpoint, its deliveries and the events of others do not exist.
    ("GET", "/api/webhook-endpoints"): (_get("/api/webhook-endpoints"), ANY_KEY),
    ("POST", "/api/webhook-endpoints"): (
        _json(
            "/api/webhook-endpoints",
            lambda world, role: {"url": "http://127.0.0.1:9/m", "eventTypes": ["task.finished"]},
        ),
        ANY_KEY,
    ),
    ("GET", "/api/webhook-endpoints/{endpoint_id}"): (_endpoint_path(), OWNER),
    ("DELETE", "/api/webhook-endpoints/{endpoint_id}"): (_endpoint_path(fresh=True), OWNER),
    ("GET", "/api/webhook-endpoints/{endpoint_id}/deliveries"): (_endpoint_path("/deliveries"), OWNER),
    ("POST", "/api/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/resend"): (_delivery_to_resend, OWNER),
    ("GET", "/api/events"): (_get("/api/events"), ANY_KEY),
}


def app_routes(app: Any) -> set[tuple[str, str]]:
    """Every (method, URI template) the app answers with a responder of its own (Falcon's
    automatic OPTIONS and 405 responders excluded)."""
    return {
        (method.method, route.path)
        for route in falcon.inspect.inspect_routes(app)
        for method in route.methods
        if not method.internal
    }


@pytest.fixture(scope="module")
def world(app, deps, admin, make_offer_module) -> World:  # noqa: ANN001
    customer, other = unique_customer(), unique_customer()
    revoked = issue_key(deps.db, "admin")
    client = testing.TestClient(app)
    gone = client.simulate_delete(f"/api/keys/{revoked.id}", headers=auth(admin))
    assert gone.status_code == 204, gone.text
    keys = {
        "admin": issue_key(deps.db, "admin").key,
        "ops": issue_key(deps.db, "ops").key,
        "customer_own": issue_key(deps.db, "customer", customer).key,
        "customer_other": issue_key(deps.db, "customer", other).key,
        "no_key": None,
        "revoked_key": revoked.key,
    }
    return World(client, deps, make_offer_module(), customer, keys, admin)


@pytest.fixture(scope="module")
def make_offer_module(deps, settings):  # noqa: ANN001, ANN201
    from services.orders.offers import upsert_offer

    def make() -> str:
        offer_id = f"offer_matrix_{unique_customer()[5:]}"
        upsert_offer(deps.db, offer_id, name="Matrix", price=PRICE, stock=100_000, currency=settings.currency)
        return offer_id

    return make


def test_every_route_has_a_matrix_row(app) -> None:  # noqa: ANN001
    routes = app_routes(app)
    assert routes - set(MATRIX) == set(), "routes without an authorization matrix row"
    assert set(MATRIX) - routes == set(), "matrix rows for routes the app no longer has"


def _matches(status: int, expected: Expected) -> bool:
    if isinstance(expected, tuple):
        return status in expected
    return status // 100 == int(expected[0]) if isinstance(expected, str) else status == expected


@pytest.mark.parametrize(("method", "template"), sorted(MATRIX), ids=[f"{m} {p}" for m, p in sorted(MATRIX)])
def test_role_matrix(world: World, method: str, template: str) -> None:
    build, expected = MATRIX[(method, template)]
    wrong = {}
    for role in ROLES:
        path, kwargs = build(world, role)
        result = world.client.simulate_request(method, path, headers=world.headers(role), **kwargs)
        if not _matches(result.status_code, expected[role]):
            wrong[role] = (result.status_code, expected[role], result.text[:200])
        elif result.status_code >= 400 and method != "HEAD" and "json" in (result.headers.get("content-type") or ""):
            assert "error" in result.json, result.text  # refusals use the error envelope
    assert not wrong, wrong


def test_customers_list_and_read_only_their_own(world: World) -> None:
    """The list is scoped, not refused: customer B sees none of A's orders, A sees only its own."""
    world.order()
    own = world.client.simulate_get("/api/orders", headers=world.headers("customer_own")).json["value"]
    other = world.client.simulate_get("/api/orders", headers=world.headers("customer_other")).json["value"]
    assert own and {order["customerId"] for order in own} == {world.customer}
    assert world.customer not in {order["customerId"] for order in other}


@pytest.mark.parametrize("role", ["customer_own", "customer_other"])
@pytest.mark.parametrize("dry_run", [False, True])
def test_customers_may_not_bulk_cancel(world: World, role: str, dry_run: bool) -> None:
    """Bulk cancel is an operator's tool (API.md: ops has "bulk cancel", a customer does not): a
    customer key is 403 for its own orders too, dry run included, before anything is read or
    written; the order stays as it was."""
    order_id = world.order()["orderId"]
    with no_writes(world.deps.db):
        result = world.client.simulate_post(
            "/api/orders/bulk-cancel",
            params={"dryRun": "true"} if dry_run else None,
            json={"orderIds": [order_id], "reason": "m"},
            headers=world.headers(role),
        )
    assert result.status_code == 403 and result.json["error"]["code"] == "FORBIDDEN", result.text
    assert order_row(world.deps.db, order_id).status == "pending_payment"


@pytest.mark.parametrize("role", ROLES)
def test_refund_is_for_staff_only(world: World, role: str) -> None:
    """Customers pay their orders; giving money back is a staff decision (API.md: a customer may
    "create and pay its own orders"). A customer refunding its own paid order, e.g. after it
    shipped, would keep the goods and the money."""
    order_id = world.paid_order()
    result = world.client.simulate_post(
        "/api/orders/payment",
        json={"orderId": order_id, "action": "refund", "paymentDetails": {"method": "credit_card"}},
        headers=world.headers(role),
    )
    expected = STAFF[role]  # the action is refused before any order is looked up, as for status changes
    assert _matches(result.status_code, expected), (role, result.status_code, result.text)
