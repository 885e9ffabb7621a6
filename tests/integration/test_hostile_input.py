"""Hostile input answers the error envelope with its code, never a 500, and writes nothing.

Each test replays one attack from the security issue (year-9999 dates, 5,000-digit headers,
non-ASCII digits, odd JSON shapes under a valid signature, totals beyond NUMERIC(12,2), ...)
and checks three things: the status and error code, that the body is the envelope, and that the
request sent no INSERT/UPDATE/DELETE (:func:`tests.integration.helpers.no_writes`).
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest
from falcon import testing

from api.links import PublicLinks
from models.ids import new_id
from services.exports import ExportPolicy
from services.exports.service import build_export
from services.payments.gateways.registry import webhook_secret
from services.payments.gateways.signing import sign
from tests.conftest import auth, unique_customer
from tests.integration.helpers import error_code, no_writes, order_row, payments_of, place, wait_task


def refused(result: testing.Result, status: int, code: str) -> dict[str, Any]:
    """Assert the envelope with ``code`` and ``status``; returns the error object."""
    assert result.status_code == status, result.text
    assert error_code(result) == code, result.text
    error = result.json["error"]
    assert set(error) == {"code", "message", "details", "requestId"}
    return error


# --- dates at the ends of the calendar ---------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"startDate": "9999-12-31", "endDate": "9999-12-31"}, "startDate"),
        ({"startDate": "9999-12-30", "endDate": "9999-12-31", "groupBy": "week"}, "endDate"),
        ({"startDate": "9999-12-01", "endDate": "9999-12-31", "groupBy": "month"}, "endDate"),
        ({"startDate": "9999-12-31", "endDate": "9999-12-31", "timezone": "Pacific/Kiritimati"}, "endDate"),
        ({"startDate": "9999-12-31", "endDate": "9999-12-31", "timezone": "America/Adak"}, "endDate"),
        ({"startDate": "0001-01-01", "endDate": "0001-01-01"}, "startDate"),
        ({"startDate": "0001-01-01", "endDate": "0001-01-02", "timezone": "Asia/Tokyo"}, "startDate"),
        ({"startDate": "0001-01-01", "endDate": "0001-01-02", "timezone": "America/New_York"}, "startDate"),
        ({"startDate": "2026-06-02", "endDate": "2026-06-01"}, "endDate"),
    ],
)
def test_metrics_dates_beyond_the_calendar_are_400(client, admin_headers, deps, params, field):
    """Year 9999 used to overflow (OverflowError → 500) computing the midnight after endDate; year
    1 did so converting local midnight to UTC in zones east of UTC."""
    with no_writes(deps.db):
        result = client.simulate_get("/api/orders/metrics", params=params, headers=admin_headers)
    error = refused(result, 400, "VALIDATION_ERROR")
    assert field in [detail["field"] for detail in error["details"]]


def _week_keys(first: date, last: date) -> list[str]:
    monday = first - timedelta(days=first.weekday())
    return [(monday + timedelta(weeks=n)).isoformat() for n in range((last - monday).days // 7 + 1)]


@pytest.mark.parametrize("timezone", ["UTC", "Pacific/Kiritimati", "America/Adak", "Asia/Manila", "America/Sitka"])
@pytest.mark.parametrize(("first", "last"), [(date(1, 1, 2), date(1, 1, 8)), (date(9999, 12, 24), date(9999, 12, 30))])
def test_metrics_first_and_last_accepted_days(client, admin_headers, timezone, first, last):
    """The bounds themselves work in zones with the largest offsets (Manila and Sitka had local mean
    time offsets near -16 h and +15 h in year 1), for every time grouping: the zero-filled buckets
    stop at the last one instead of stepping past December 9999."""
    expected = {
        "day": [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)],
        "week": _week_keys(first, last),
        "month": [first.replace(day=1).isoformat()],
    }
    for group_by, keys in expected.items():
        params = {
            "startDate": first.isoformat(),
            "endDate": last.isoformat(),
            "groupBy": group_by,
            "timezone": timezone,
        }
        result = client.simulate_get("/api/orders/metrics", params=params, headers=admin_headers)
        assert result.status_code == 200, result.text
        assert [group["key"] for group in result.json["groups"]] == keys
        assert result.json["totalOrders"] == 0


@pytest.mark.parametrize(
    "filters",
    [
        {"endDate": "9999-12-31"},
        {"startDate": "0001-01-01", "endDate": "9999-12-31"},
        {"startDate": "9999-12-31"},
        {"endDate": "0001-01-01"},
    ],
)
def test_export_dates_at_the_ends_of_the_calendar_are_accepted(client, make_key, filters):
    """Export dates are whole UTC days: ``endDate`` 9999-12-31 means "to the end of time" (its next
    midnight used to overflow: 500). The request is queued like any other."""
    result = client.simulate_post(
        "/api/orders/export", json={"format": "csv", "filters": filters}, headers=auth(make_key("admin"))
    )
    assert result.status_code == 202, result.text


def test_export_to_the_end_of_time_includes_every_row(client, admin_headers, make_offer, deps, settings):
    customer = unique_customer()
    order = place(client, admin_headers, make_offer(), customer_id=customer)
    args = {
        "exportId": new_id("exp"),
        "format": "csv",
        "columns": ["id"],
        "filters": {"customerId": customer, "startDate": "0001-01-01", "endDate": "9999-12-31"},
        "fileUrl": "/api/exports/exp_hostile/file",
    }
    result = build_export(deps.db, args, ExportPolicy.from_settings(settings), job_id=new_id("task"))
    assert result["rows"] == 1
    content = (settings.export_dir / f"{args['exportId']}.csv").read_text()
    assert order["orderId"] in content


def test_export_with_end_before_start_is_400(client, admin_headers, deps):
    body = {"format": "csv", "filters": {"startDate": "9999-12-31", "endDate": "0001-01-01"}}
    with no_writes(deps.db):
        result = client.simulate_post("/api/orders/export", json=body, headers=admin_headers)
    refused(result, 400, "VALIDATION_ERROR")


# --- If-Match: entity tags are strings ---------------------------------------------------------


@pytest.mark.parametrize(
    "if_match",
    [
        "9" * 5000,
        '"' + "9" * 5000 + '"',
        'W/"' + "9" * 5000 + '"',
        '"²"',  # str.isdigit() says yes, int() raises
        "²",
        '"١"',  # an Arabic-Indic one: int() reads 1, but the tag is not "1"
        '"𝟏"',
        '"12345678901"',  # longer than any 32-bit version
        '"-1"',
        '"1.0"',
        '""',
        '"',
        ", , ,",
    ],
)
def test_if_match_naming_no_version_is_412_and_changes_nothing(client, admin_headers, make_offer, deps, if_match):
    order_id = place(client, admin_headers, make_offer())["orderId"]
    with no_writes(deps.db):
        result = client.simulate_patch(
            f"/api/orders/{order_id}/status",
            json={"status": "processing", "reason": "hostile"},
            headers={**admin_headers, "If-Match": if_match},
        )
    error = refused(result, 412, "PRECONDITION_FAILED")
    assert error["details"][0]["currentVersion"] == 1
    current = order_row(deps.db, order_id)
    assert (current.status, current.version) == ("pending_payment", 1)


def test_a_good_tag_beside_a_hostile_one_still_matches(client, admin_headers, make_offer, deps):
    order_id = place(client, admin_headers, make_offer())["orderId"]
    result = client.simulate_patch(
        f"/api/orders/{order_id}/status",
        json={"status": "processing"},
        headers={**admin_headers, "If-Match": '"' + "9" * 5000 + '", "²", W/"1"'},
    )
    assert result.status_code == 200, result.text
    assert order_row(deps.db, order_id).version == 2


# --- Range on the export download --------------------------------------------------------------


@pytest.fixture(scope="module")
def export_file(deps, settings) -> tuple[str, bytes]:
    """A finished export (built in process) and its bytes: (signed path, content)."""
    export_id = new_id("exp")
    args = {"exportId": export_id, "format": "csv", "columns": ["id", "status"], "filters": {}}
    args["fileUrl"] = PublicLinks(settings.public_base_url).export_file_url(export_id)
    result = build_export(deps.db, args, ExportPolicy.from_settings(settings), job_id=new_id("task"))
    url = result["downloadUrl"]
    return url[url.index("/api/") :], (settings.export_dir / f"{args['exportId']}.csv").read_bytes()


HUGE = "9" * 5000


@pytest.mark.parametrize(
    "header",
    [
        "bytes=1-²",
        "bytes=²-",
        "bytes=-²",
        "bytes=١-٢",
        "bytes=𝟏-𝟐",
        "bytes=+1-2",
        "bytes=0x1-2",
        "bytes=1_0-2",
        "bytes=--1",
        "bytes=1--",
        "bytes=5-1",
        "bytes=0-1,2-3",
        "bytes=",
        "pages=0-1",
    ],
)
def test_malformed_ranges_are_ignored(client, export_file, deps, header):
    """RFC 9110: a Range the server does not understand is ignored; the whole file is sent."""
    path, content = export_file
    with no_writes(deps.db):
        result = client.simulate_get(path, headers={"Range": header})
    assert result.status_code == 200, result.text
    assert result.content == content


@pytest.mark.parametrize(
    ("header", "wanted"),
    [
        (f"bytes=0-{HUGE}", slice(0, None)),  # last beyond the end: up to the end
        (f"bytes=-{HUGE}", slice(0, None)),  # a suffix longer than the file: all of it
        ("bytes=2-" + "9" * 30, slice(2, None)),
    ],
)
def test_huge_range_ends_are_clamped(client, export_file, header, wanted):
    path, content = export_file
    result = client.simulate_get(path, headers={"Range": header})
    assert result.status_code == 206, result.text
    assert result.content == content[wanted]


@pytest.mark.parametrize("header", [f"bytes={HUGE}-", f"bytes={'9' * 30}-{'9' * 31}", "bytes=-0"])
def test_ranges_beyond_the_file_are_416(client, export_file, header):
    path, content = export_file
    result = client.simulate_get(path, headers={"Range": header})
    refused(result, 416, "RANGE_NOT_SATISFIABLE")
    assert result.headers["content-range"] == f"bytes */{len(content)}"


# --- amounts beyond NUMERIC(12, 2) -------------------------------------------------------------

LARGEST = "9999999999.99"


def offer_state(client: testing.TestClient, headers: dict[str, str], offer_id: str) -> tuple[Any, ...]:
    body = client.simulate_get(f"/api/offers/{offer_id}", headers=headers).json
    return body["price"], body["stockAvailable"], body["stockReserved"], body["updatedAt"]


def _order_body(customer: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"customerId": customer, "items": items, "paymentMethod": "credit_card", "paymentGatewayId": "stripe_1"}


@pytest.mark.parametrize(
    ("price", "quantities"),
    [
        ("9999999.99", [10_000]),  # 99,999,999,900.00
        (LARGEST, [2]),
        (LARGEST, [1, 1]),  # two items of the largest price
        ("100000000.00", [50] * 2),  # 10,000,000,000.00: one cent over
    ],
)
def test_order_totals_beyond_the_money_column_are_400_before_any_write(
    client, admin_headers, make_offer, deps, price, quantities
):
    """Each price fits NUMERIC(12, 2) but the total does not: SQLite stored it silently and
    PostgreSQL raised numeric field overflow (500). Now 400 VALIDATION_ERROR on ``items``, with
    nothing reserved, written or queued."""
    offer = make_offer(price, stock=1_000_000)
    before = offer_state(client, admin_headers, offer)
    customer = unique_customer()
    body = _order_body(customer, [{"offerId": offer, "quantity": q, "price": float(price)} for q in quantities])
    with no_writes(deps.db):
        result = client.simulate_post("/api/orders", json=body, headers=admin_headers)
    error = refused(result, 400, "VALIDATION_ERROR")
    assert error["details"][0]["field"] == "items"
    assert offer_state(client, admin_headers, offer) == before
    assert (
        client.simulate_get(
            "/api/orders", params={"$filter": f"customerId eq '{customer}'"}, headers=admin_headers
        ).json["value"]
        == []
    )


def test_the_largest_total_is_accepted(client, admin_headers, make_offer, deps):
    offer = make_offer("4999999999.99", stock=10)
    body = _order_body(unique_customer(), [{"offerId": offer, "quantity": 2, "price": 4999999999.99}])
    placed = client.simulate_post("/api/orders", json=body, headers=admin_headers)
    assert placed.status_code == 201, placed.text
    assert str(order_row(deps.db, placed.json["orderId"]).total_amount) == "9999999999.98"
    assert placed.json["totalAmount"] == 9999999999.98


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"quantity": 1_000_000, "price": 9999999.99}, "items[0].quantity"),
        ({"quantity": 1, "price": 10**10}, "items[0].price"),
        ({"quantity": 1, "price": 1e300}, "items[0].price"),
        ({"quantity": 10**30, "price": 1}, "items[0].quantity"),
    ],
)
def test_single_quantities_and_prices_beyond_the_limits_are_400(client, admin_headers, make_offer, deps, item, field):
    body = _order_body(unique_customer(), [{"offerId": make_offer(), **item}])
    with no_writes(deps.db):
        result = client.simulate_post("/api/orders", json=body, headers=admin_headers)
    error = refused(result, 400, "VALIDATION_ERROR")
    assert field in [detail["field"] for detail in error["details"]]


@pytest.mark.parametrize("price", [10**10, 10000000000.01, 1e300, 10**20])
def test_offer_prices_beyond_the_money_column_are_400(client, admin_headers, make_offer, deps, price):
    offer = make_offer("5.00")
    before = offer_state(client, admin_headers, offer)
    with no_writes(deps.db):
        result = client.simulate_put(
            f"/api/offers/{offer}", json={"name": "Huge", "price": price, "stock": 1}, headers=admin_headers
        )
    error = refused(result, 400, "VALIDATION_ERROR")
    assert [detail["field"] for detail in error["details"]] == ["price"]
    assert offer_state(client, admin_headers, offer) == before


@pytest.mark.parametrize("amount", [10**10, 10000000000.01, 1e300, 10**20])
def test_payment_amounts_beyond_the_money_column_are_400(client, admin_headers, make_offer, deps, amount):
    order_id = place(client, admin_headers, make_offer())["orderId"]
    body = {
        "orderId": order_id,
        "action": "process",
        "paymentDetails": {"method": "credit_card", "token": "tok_visa", "amount": amount},
    }
    with no_writes(deps.db):
        result = client.simulate_post("/api/orders/payment", json=body, headers=admin_headers)
    error = refused(result, 400, "VALIDATION_ERROR")
    assert [detail["field"] for detail in error["details"]] == ["paymentDetails.amount"]
    assert order_row(deps.db, order_id).payment_status == "unpaid"


# --- webhook bodies that are not gateway events, under a valid signature -----------------------

DEEP = "[" * 5000 + "]" * 5000


def _paid_session(order_id: str, **changes: Any) -> dict[str, Any]:
    obj = {
        "id": new_id("cs_sbx"),
        "object": "checkout.session",
        "payment_status": "paid",
        "payment_intent": new_id("pi_sbx"),
        "amount_total": 9999,
        "metadata": {"orderId": order_id},
    }
    return {"id": new_id("evt"), "type": "checkout.session.completed", "data": {"object": {**obj, **changes}}}


def _failed_intent(**changes: Any) -> dict[str, Any]:
    obj = {"id": new_id("pi"), "amount": 9999, "last_payment_error": {"code": "card_declined"}, **changes}
    return {"id": new_id("evt"), "type": "payment_intent.payment_failed", "data": {"object": obj}}


def _nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


HOSTILE_EVENTS: list[Any] = [
    "[1,2]",
    '{"data":5}',
    '{"data":{"object":5}}',
    '"x"',
    "null",
    "5",
    DEEP,
    '{"id":"evt_deep","data":' + DEEP + "}",
    {"id": "evt_nested", "type": "x", "data": {"object": {"extra": _nested(40)}}},
    {"id": ["evt_list"], "type": "checkout.session.completed"},
    {"id": "e" * 10_000, "type": "checkout.session.completed"},
    {"id": "evt_type", "type": "t" * 1000},
    {"id": "evt_\u0000", "type": "x"},
    lambda order: _paid_session(order, metadata=5),
    lambda order: _paid_session(order, metadata=[order]),
    lambda order: _paid_session(order, metadata={"orderId": {"id": order}}),
    lambda order: _paid_session(order, id=[1]),
    lambda order: _paid_session(order, id="cs_" + "x" * 300),
    lambda order: _paid_session(order, amount_total="9999"),
    lambda order: _paid_session(order, amount_total=99.99),
    lambda order: _paid_session(order, amount_total=True),
    lambda order: _paid_session(order, amount_total=-1),
    lambda order: _paid_session(order, amount_total=10**40),
    lambda order: _paid_session(order, payment_intent={"id": "pi_1"}),
    lambda order: _failed_intent(last_payment_error=5, metadata={"orderId": order}),
    lambda order: _failed_intent(last_payment_error={"code": ["x"]}, metadata={"orderId": order}),
]


def _body(event: Any, order_id: str) -> bytes:
    if callable(event):
        event = event(order_id)
    if isinstance(event, str):
        return event.encode()
    return json.dumps(event).encode()


@pytest.mark.parametrize("gateway", ["stripe_1", "stripe_test"])  # the sandbox adapter, the stripe one
@pytest.mark.parametrize("event", HOSTILE_EVENTS, ids=range(len(HOSTILE_EVENTS)))
def test_signed_webhook_bodies_that_are_not_events_are_400(
    client, admin_headers, make_offer, deps, settings, gateway, event
):
    """Non-object bodies, wrong shapes, strings too long for their columns and amounts that are
    not integer minor units all used to be 500s (AttributeError, RecursionError, OverflowError,
    a DataError on PostgreSQL) or, worse, applied; now the route's own rejection, with the
    order untouched and no event stored."""
    order_id = place(client, admin_headers, make_offer(), gateway=gateway)["orderId"]
    body = _body(event, order_id)
    header = deps.gateways.get(gateway).signature_header
    with no_writes(deps.db):
        result = client.simulate_post(
            f"/api/payments/webhooks/{gateway}",
            body=body,
            headers={"Content-Type": "application/json", header: sign(body, webhook_secret(settings, gateway))},
        )
    refused(result, 400, "INVALID_SIGNATURE")
    assert result.json["error"]["message"] == "The webhook payload is not a gateway event."
    current = order_row(deps.db, order_id)
    assert (current.status, current.payment_status) == ("pending_payment", "unpaid")


@pytest.mark.parametrize("gateway", ["stripe_1", "stripe_test"])
def test_a_well_formed_signed_event_still_applies(client, admin_headers, make_offer, deps, settings, gateway, worker):
    order = place(client, admin_headers, make_offer(), gateway=gateway)
    assert wait_task(client, order["taskId"], admin_headers)["state"] == "succeeded"  # the session is open
    [checkout] = payments_of(deps.db, order["orderId"], checkout=True)
    event = _paid_session(order["orderId"], id=checkout.checkout_session_id, currency="usd")
    body = json.dumps(event).encode()
    header = deps.gateways.get(gateway).signature_header
    result = client.simulate_post(
        f"/api/payments/webhooks/{gateway}",
        body=body,
        headers={"Content-Type": "application/json", header: sign(body, webhook_secret(settings, gateway))},
    )
    assert result.status_code == 200 and result.json["status"] == "applied", result.text
    assert order_row(deps.db, order["orderId"]).payment_status == "completed"


# --- deep nesting in ordinary JSON bodies ------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        DEEP,
        '{"customerId":' + DEEP + "}",
        '{"items":[' + "[" * 900 + "]" * 900 + "]}",  # parses, then used to be walked recursively
        json.dumps({"customerId": "cust_1", "items": _nested(33)}),  # just over the limit
    ],
)
@pytest.mark.parametrize("path", ["/api/orders", "/api/orders/export", "/api/orders/bulk-cancel", "/api/orders/items"])
def test_deeply_nested_bodies_are_400(client, admin_headers, deps, body, path):
    with no_writes(deps.db):
        result = client.simulate_post(
            path, body=body.encode(), headers={**admin_headers, "Content-Type": "application/json"}
        )
    error = refused(result, 400, "VALIDATION_ERROR")
    if body != DEEP:  # a top-level array is "not an object" before its depth matters
        assert error["details"] == [{"field": "$", "message": "nested deeper than 32 levels"}]


def test_bodies_nested_within_the_limit_are_validated_as_usual(client, admin_headers, deps):
    body = json.dumps({"customerId": "cust_1", "items": _nested(31)})
    with no_writes(deps.db):
        result = client.simulate_post(
            "/api/orders", body=body, headers={**admin_headers, "Content-Type": "application/json"}
        )
    error = refused(result, 400, "VALIDATION_ERROR")
    assert "items" in {detail["field"].split("[")[0] for detail in error["details"]}


# --- NUL in ids and query parameters (PostgreSQL text cannot hold it) ---------------------------


@pytest.mark.parametrize(
    ("method", "path", "field", "authenticated"),
    [
        ("GET", "/api/orders/%00", "orderId", True),
        ("GET", "/api/orders/ord_%00x", "orderId", True),
        ("PATCH", "/api/orders/%00/status", "orderId", True),
        ("GET", "/api/orders/%00/checkout", "orderId", False),
        ("GET", "/api/orders/%00/checkout/complete?session_id=cs_1", "orderId", False),
        ("GET", "/api/orders/ord_1/checkout/complete?session_id=%00", "session_id", False),
        ("GET", "/api/tasks/%00", "taskId", True),
        ("GET", "/api/offers/%00", "offerId", True),
        ("PUT", "/api/offers/%00", "offerId", True),
        ("DELETE", "/api/keys/%00", "keyId", True),
        ("GET", "/sandbox/checkout/k_key/%00", "sessionId", False),
        ("POST", "/sandbox/checkout/k_key/%00/pay", "sessionId", False),
        ("GET", "/api/exports/%00/file?expires=1&signature=a", "exportId", False),
        ("POST", "/api/payments/webhooks/%00", "gatewayId", False),
        # NUL in $filter is the query language's INVALID_QUERY with its position (test_orders_query.py)
        ("GET", "/api/orders/metrics?startDate=2026-01-01&endDate=2026-01-02&groupBy=%00", "groupBy", True),
        ("GET", "/api/orders/metrics?startDate=2026-01-01&endDate=2026-01-02&timezone=%00", "timezone", True),
    ],
)
def test_nul_in_ids_and_parameters_is_400(client, admin_headers, deps, method, path, field, authenticated):
    """These were 500s on PostgreSQL (psycopg refuses NUL in text) and 404s on SQLite."""
    path, _, query = path.partition("?")
    headers = {**admin_headers, "Content-Type": "application/json"} if authenticated else {}
    with no_writes(deps.db):
        result = client.simulate_request(method, path, query_string=query, headers=headers, body=b"{}")
    error = refused(result, 400, "VALIDATION_ERROR")
    assert error["details"] == [{"field": field, "message": "must not contain the NUL character"}]


@pytest.mark.parametrize("length", [64, 10_000])
@pytest.mark.parametrize("template", ["/api/orders/{}", "/api/tasks/{}", "/api/offers/{}", "/api/orders/{}/checkout"])
def test_long_ids_are_plain_not_found(client, admin_headers, deps, template, length):
    with no_writes(deps.db):
        result = client.simulate_get(template.format("x" * length), headers=admin_headers)
    assert result.status_code == 404, result.text
    assert result.json["error"]["code"] in ("ORDER_NOT_FOUND", "TASK_NOT_FOUND", "NOT_FOUND")


# --- the contract says so ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("get", "/api/orders/metrics", {"200", "400"}),
        ("post", "/api/orders/export", {"202", "400"}),
        ("patch", "/api/orders/{order_id}/status", {"200", "400", "412"}),
        ("get", "/api/exports/{export_id}/file", {"200", "206", "400", "416"}),
        ("post", "/api/payments/webhooks/{gateway_id}", {"200", "400"}),
        ("post", "/api/orders", {"201", "400"}),
        ("put", "/api/offers/{offer_id}", {"200", "400"}),
        ("post", "/api/orders/payment", {"202", "400"}),
        ("post", "/api/orders/bulk-cancel", {"202", "403"}),
        ("get", "/metrics", {"200", "400", "401", "403"}),
    ],
)
def test_openapi_declares_what_these_routes_answer(client, method, path, statuses):
    operation = client.simulate_get("/api/openapi.json").json["paths"][path][method]
    assert statuses <= set(operation["responses"]), sorted(operation["responses"])
