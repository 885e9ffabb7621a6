"""``GET /api/orders``: the query language against a known data set, hostile input, and fuzzing.

Every expected answer is computed in plain Python over the same rows the test inserted; each
query is ANDed with ``startswith(customerId, '<prefix>')`` so rows of other tests never count.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from falcon import testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import auth
from tests.integration.orders_data import ItemRow, Row, insert_rows, prefix

P = prefix()
CUSTOMERS = [f"{P}c{n}" for n in range(5)] + [f"{P}Alice", f"{P}o'brien", f"{P}zoë"]
AMOUNTS = [
    "0.00",
    "5.50",
    "19.99",
    "20.00",
    "49.99",
    "50.00",
    "50.50",
    "99.99",
    "100.00",
    "100.01",
    "150.00",
    "199.50",
    "200.00",
    "250.75",
    "999.99",
]
STATUSES = ["pending_payment", "processing", "shipped", "completed", "cancelled", "refunded"]
OFFERS = ["offer_456", "offer_457", "offer_4x", "offer_900"]
ITEM_STATUSES = ["pending", "verified", "fulfilled", "cancelled"]
EXACT_MOMENTS = [
    datetime(2026, 1, 1, tzinfo=UTC),
    datetime(2026, 2, 1, tzinfo=UTC),
    datetime(2026, 1, 15, 10, tzinfo=UTC),
]


def _dataset() -> list[Row]:
    rng = random.Random(5)
    base = datetime(2025, 12, 28, tzinfo=UTC)
    rows = []
    for n in range(48):
        created = (
            EXACT_MOMENTS[n]
            if n < len(EXACT_MOMENTS)
            else base + timedelta(seconds=rng.randrange(0, 70 * 86400), microseconds=rng.randrange(0, 10**6))
        )
        order_id = f"ord_{P}{n:03d}"
        items = [
            ItemRow(
                id=f"item_{P}{n:03d}_{k}",
                offer_id=rng.choice(OFFERS),
                quantity=rng.randint(1, 4),
                price=Decimal(rng.choice(AMOUNTS)),
                status=rng.choice(ITEM_STATUSES),
            )
            for k in range(rng.choice([0, 1, 1, 2, 2, 3]))
        ]
        rows.append(
            Row(
                id=order_id,
                customer_id=CUSTOMERS[n % len(CUSTOMERS)],
                status=rng.choice(STATUSES),
                payment_status=rng.choice(["unpaid", "completed", "refunded"]),
                payment_method=rng.choice(["credit_card", "paypal", "bank_transfer"]),
                payment_gateway_id=rng.choice(["stripe_1", "sandbox"]),
                total_amount=Decimal(AMOUNTS[n % len(AMOUNTS)]),
                currency="EUR" if n % 7 == 0 else "USD",
                created_at=created,
                updated_at=created + timedelta(hours=n % 4),
                items=items,
            )
        )
    return rows


ROWS = _dataset()
IDS = sorted(row.id for row in ROWS)


@pytest.fixture(scope="module")
def dataset(deps) -> list[Row]:  # noqa: ANN001
    insert_rows(deps.db, ROWS)
    return ROWS


def scoped(expression: str) -> str:
    return f"startswith(customerId,'{P}') and ({expression})"


def q(text: str) -> str:
    """A string literal (quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"


def day(y: int, m: int, d: int, h: int = 0, offset_hours: int = 0) -> datetime:
    return datetime(y, m, d, h, tzinfo=UTC) - timedelta(hours=offset_hours)


def items_any(o: Row, pred: Callable[[ItemRow], bool]) -> bool:
    return any(pred(i) for i in o.items)


D = Decimal
FILTER_CASES: list[tuple[str, Callable[[Row], bool]]] = [
    ("status eq 'completed'", lambda o: o.status == "completed"),
    ("status ne 'completed'", lambda o: o.status != "completed"),
    ("totalAmount gt 100", lambda o: o.total_amount > 100),
    ("totalAmount ge 100", lambda o: o.total_amount >= 100),
    ("totalAmount lt 50.5", lambda o: o.total_amount < D("50.5")),
    ("totalAmount le 99.99", lambda o: o.total_amount <= D("99.99")),
    ("itemCount eq 2", lambda o: o.item_count == 2),
    ("itemCount gt 1 and status eq 'processing'", lambda o: o.item_count > 1 and o.status == "processing"),
    ("status eq 'cancelled' or status eq 'refunded'", lambda o: o.status in ("cancelled", "refunded")),
    ("not status eq 'completed'", lambda o: o.status != "completed"),
    (
        "not (status eq 'completed' or status eq 'cancelled')",
        lambda o: o.status not in ("completed", "cancelled"),
    ),
    ("status in ('shipped','completed')", lambda o: o.status in ("shipped", "completed")),
    (f"customerId in ({q(P + 'c1')}, {q(P + 'c2')})", lambda o: o.customer_id in (P + "c1", P + "c2")),
    ("contains(customerId, 'c1')", lambda o: "c1" in o.customer_id),
    ("startswith(paymentMethod, 'credit')", lambda o: o.payment_method.startswith("credit")),
    ("endswith(paymentGatewayId, '_1')", lambda o: o.payment_gateway_id.endswith("_1")),
    (f"tolower(customerId) eq {q(P + 'alice')}", lambda o: o.customer_id.lower() == P + "alice"),
    ("contains(tolower(customerId), 'alice')", lambda o: "alice" in o.customer_id.lower()),
    ("contains(customerId, 'alice')", lambda o: "alice" in o.customer_id),
    ("contains(customerId, 'Alice')", lambda o: "Alice" in o.customer_id),
    ("toupper(currency) eq 'EUR'", lambda o: o.currency.upper() == "EUR"),
    ("year(createdAt) eq 2025", lambda o: o.created_at.year == 2025),
    ("month(createdAt) eq 2", lambda o: o.created_at.month == 2),
    ("day(createdAt) eq 1", lambda o: o.created_at.day == 1),
    (
        "year(createdAt) eq 2026 and month(createdAt) eq 1",
        lambda o: (o.created_at.year, o.created_at.month) == (2026, 1),
    ),
    ("createdAt ge 2026-02-01", lambda o: o.created_at >= day(2026, 2, 1)),
    ("createdAt gt 2026-02-01", lambda o: o.created_at > day(2026, 2, 1)),
    ("createdAt eq 2026-01-01T00:00:00Z", lambda o: o.created_at == day(2026, 1, 1)),
    ("createdAt lt 2026-01-15T12:00:00Z", lambda o: o.created_at < day(2026, 1, 15, 12)),
    ("createdAt gt 2026-01-15T12:00:00+02:00", lambda o: o.created_at > day(2026, 1, 15, 12, offset_hours=2)),
    ("createdAt le 2026-01-15T10:00:00.000000Z", lambda o: o.created_at <= day(2026, 1, 15, 10)),
    ("updatedAt ge createdAt", lambda o: o.updated_at >= o.created_at),
    ("updatedAt gt createdAt", lambda o: o.updated_at > o.created_at),
    ("paymentStatus eq null", lambda o: False),
    ("paymentStatus ne null", lambda o: True),
    ("items/any(i: i/offerId eq 'offer_456')", lambda o: items_any(o, lambda i: i.offer_id == "offer_456")),
    ("items/any(i: i/quantity gt 2)", lambda o: items_any(o, lambda i: i.quantity > 2)),
    (
        "items/any(i: i/price ge 50 and i/status eq 'fulfilled')",
        lambda o: items_any(o, lambda i: i.price >= 50 and i.status == "fulfilled"),
    ),
    ("items/all(i: i/status eq 'fulfilled')", lambda o: all(i.status == "fulfilled" for i in o.items)),
    ("items/any()", lambda o: bool(o.items)),
    ("not items/any()", lambda o: not o.items),
    (
        "items/any(x: x/offerId eq 'offer_456') and totalAmount gt 10",
        lambda o: items_any(o, lambda i: i.offer_id == "offer_456") and o.total_amount > 10,
    ),
    (
        "items/any(i: startswith(i/offerId, 'offer_4'))",
        lambda o: items_any(o, lambda i: i.offer_id.startswith("offer_4")),
    ),
    (
        "items/any(i: i/status eq 'cancelled' and i/quantity eq 1) or itemCount eq 3",
        lambda o: items_any(o, lambda i: i.status == "cancelled" and i.quantity == 1) or o.item_count == 3,
    ),
    (
        "items/any(i: i/price gt totalAmount)",
        lambda o: items_any(o, lambda i: i.price > o.total_amount),
    ),
    (f"id eq {q(IDS[7])}", lambda o: o.id == IDS[7]),
    (f"id in ({q(IDS[1])}, {q(IDS[4])}, {q(IDS[40])})", lambda o: o.id in (IDS[1], IDS[4], IDS[40])),
    (f"id gt {q(IDS[30])}", lambda o: o.id > IDS[30]),
    (f"id le {q(IDS[10])}", lambda o: o.id <= IDS[10]),
    (f"customerId eq {q(P + 'o' + chr(39) + 'brien')}", lambda o: o.customer_id == P + "o'brien"),
    ("contains(customerId, '''')", lambda o: "'" in o.customer_id),
    (
        "paymentMethod eq 'paypal' and (totalAmount lt 20 or totalAmount gt 200)",
        lambda o: o.payment_method == "paypal" and (o.total_amount < 20 or o.total_amount > 200),
    ),
    ("(status eq 'shipped')", lambda o: o.status == "shipped"),
    (
        "((status eq 'shipped') or (status eq 'processing')) and itemCount ge 2",
        lambda o: o.status in ("shipped", "processing") and o.item_count >= 2,
    ),
    ("totalAmount eq 0", lambda o: o.total_amount == 0),
    ("totalAmount eq 99.99", lambda o: o.total_amount == D("99.99")),
    ("totalAmount ne 99.99", lambda o: o.total_amount != D("99.99")),
    ("itemCount le 1", lambda o: o.item_count <= 1),
    ("itemCount in (1, 3)", lambda o: o.item_count in (1, 3)),
    ("totalAmount in (99.99, 100, 0)", lambda o: o.total_amount in (D("99.99"), D(100), D(0))),
    (
        "currency eq 'EUR' and paymentStatus eq 'completed'",
        lambda o: o.currency == "EUR" and o.payment_status == "completed",
    ),
    (
        "status eq 'pending_payment' or paymentStatus eq 'refunded'",
        lambda o: o.status == "pending_payment" or o.payment_status == "refunded",
    ),
    (
        "not (totalAmount gt 50) and not (itemCount eq 1)",
        lambda o: not o.total_amount > 50 and o.item_count != 1,
    ),
    ("2026-02-01 le createdAt", lambda o: day(2026, 2, 1) <= o.created_at),
    ("100 lt totalAmount", lambda o: 100 < o.total_amount),
    (
        "createdAt ge 2026-01-01 and createdAt lt 2026-02-01",
        lambda o: day(2026, 1, 1) <= o.created_at < day(2026, 2, 1),
    ),
    ("startswith(id, 'ord_')", lambda o: True),
    ("endswith(customerId, 'c3')", lambda o: o.customer_id.endswith("c3")),
    ("endswith(customerId, 'some_long_suffix_c3')", lambda o: o.customer_id.endswith("some_long_suffix_c3")),
    ("contains(customerId, '')", lambda o: True),
    ("tolower(status) eq 'completed'", lambda o: o.status == "completed"),
    ("status eq 'COMPLETED'", lambda o: False),
    (f"customerId eq {q(P + 'zoë')}", lambda o: o.customer_id == P + "zoë"),
    ("contains(customerId, 'ë')", lambda o: "ë" in o.customer_id),
    ("itemCount eq -1", lambda o: False),
    ("itemCount lt 999999999999999", lambda o: True),
    ("year(createdAt) gt -99999999999", lambda o: True),
    ("totalAmount gt -0.01", lambda o: True),
    ("day(updatedAt) ge 15", lambda o: o.updated_at.day >= 15),
    (
        "status eq 'completed' and not items/any(i: i/status eq 'cancelled')",
        lambda o: o.status == "completed" and not items_any(o, lambda i: i.status == "cancelled"),
    ),
    ("  status   eq\t'shipped'  ", lambda o: o.status == "shipped"),
    (
        "not not (currency eq 'USD')",
        lambda o: o.currency == "USD",
    ),
]


def test_the_table_has_enough_cases():
    assert len(FILTER_CASES) >= 60
    assert len({text for text, _ in FILTER_CASES}) == len(FILTER_CASES)


def _get(client: testing.TestClient, headers: dict[str, str], **params: str) -> testing.Result:
    return client.simulate_get("/api/orders", params=params, headers=headers)


@pytest.mark.parametrize(("expression", "predicate"), FILTER_CASES, ids=[text for text, _ in FILTER_CASES])
def test_filter_matches_python(client, admin_headers, dataset, expression, predicate):
    result = _get(client, admin_headers, **{"$filter": scoped(expression), "$top": "1000", "$select": "id"})
    assert result.status_code == 200, result.text
    expected = sorted(row.id for row in dataset if predicate(row))
    assert sorted(entry["id"] for entry in result.json["value"]) == expected
    assert result.json["count"] == len(expected)


def _python_order(rows: list[Row], orderby: str) -> list[str]:
    keys = [(part.split()[0], part.split()[-1] == "desc") for part in orderby.split(",")]
    if "id" not in [name for name, _ in keys]:
        keys.append(("id", keys[-1][1]))
    ordered = list(rows)
    for name, descending in reversed(keys):
        ordered.sort(key=lambda row, name=name: row.api(name), reverse=descending)
    return [row.id for row in ordered]


ORDERINGS = [
    "createdAt desc",
    "createdAt asc",
    "totalAmount desc",
    "customerId asc,totalAmount desc",
    "status desc,createdAt asc",
    "itemCount,updatedAt desc",
    "currency desc,itemCount asc,totalAmount desc",
    "id desc",
]


@pytest.mark.parametrize("orderby", ORDERINGS)
def test_orderby_and_keyset_pages_match_python(client, admin_headers, dataset, orderby):
    expected = _python_order(dataset, orderby)
    one_page = _get(
        client, admin_headers, **{"$filter": f"startswith(customerId,'{P}')", "$orderby": orderby, "$top": "100"}
    )
    assert [entry["id"] for entry in one_page.json["value"]] == expected
    assert "nextLink" not in one_page.json

    seen: list[str] = []
    params = {"$filter": f"startswith(customerId,'{P}')", "$orderby": orderby, "$top": "7", "$select": "id"}
    pages = 0
    while True:
        result = _get(client, admin_headers, **params)
        assert result.status_code == 200, result.text
        assert result.json["count"] == len(dataset)
        seen.extend(entry["id"] for entry in result.json["value"])
        pages += 1
        link = result.json.get("nextLink")
        if link is None:
            break
        params = dict(parse_qsl(urlsplit(link).query, keep_blank_values=True))
        assert "$skiptoken" in params and params["$orderby"] == orderby
    assert seen == expected
    assert pages == -(-len(dataset) // 7)


def test_default_page_shape_select_expand_skip_and_count(client, admin_headers, dataset):
    base = {"$filter": f"startswith(customerId,'{P}')"}
    result = _get(client, admin_headers, **base)
    body = result.json
    assert result.status_code == 200 and body["count"] == len(dataset)
    assert len(body["value"]) == len(dataset)  # default $top is 50, the data set has 48
    first = body["value"][0]
    assert set(first) == {
        "id",
        "customerId",
        "status",
        "paymentStatus",
        "paymentMethod",
        "paymentGatewayId",
        "totalAmount",
        "currency",
        "itemCount",
        "createdAt",
        "updatedAt",
    }
    newest = max(dataset, key=lambda row: (row.created_at, row.id))
    assert first["id"] == newest.id  # default order: createdAt desc
    assert first["createdAt"] == newest.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert Decimal(str(first["totalAmount"])) == newest.total_amount

    selected = _get(client, admin_headers, **base, **{"$select": "totalAmount, id", "$top": "3", "$count": "false"})
    assert "count" not in selected.json
    assert [set(entry) for entry in selected.json["value"]] == [{"id", "totalAmount"}] * 3

    expanded = _get(
        client, admin_headers, **base, **{"$expand": "items", "$orderby": "id", "$top": "1000", "$select": "id"}
    )
    by_id = {row.id: row for row in dataset}
    for entry in expanded.json["value"]:
        row = by_id[entry["id"]]
        assert [
            (i["id"], i["offerId"], i["quantity"], Decimal(str(i["price"])), i["status"]) for i in entry["items"]
        ] == [(i.id, i.offer_id, i.quantity, i.price, i.status) for i in row.items]

    skipped = _get(client, admin_headers, **base, **{"$orderby": "id", "$skip": "45", "$top": "10"})
    assert [entry["id"] for entry in skipped.json["value"]] == IDS[45:]
    zero = _get(client, admin_headers, **base, **{"$top": "0"})
    assert zero.json["value"] == [] and zero.json["count"] == len(dataset) and "nextLink" not in zero.json


def test_customers_see_only_their_own_orders(client, dataset, make_key):
    customer = f"{P}c2"
    key = make_key("customer", customer)
    result = client.simulate_get("/api/orders", params={"$top": "1000"}, headers=auth(key))
    assert result.status_code == 200
    assert sorted(entry["id"] for entry in result.json["value"]) == sorted(
        row.id for row in dataset if row.customer_id == customer
    )
    other = client.simulate_get("/api/orders", params={"$filter": f"customerId eq '{P}c3'"}, headers=auth(key))
    assert other.status_code == 200 and other.json["value"] == [] and other.json["count"] == 0


def test_skiptoken_is_tamper_checked_and_bound_to_its_query(client, admin_headers, dataset):
    params = {"$filter": f"startswith(customerId,'{P}')", "$top": "5"}
    link = _get(client, admin_headers, **params).json["nextLink"]
    token = dict(parse_qsl(urlsplit(link).query))["$skiptoken"]
    body, _, signature = token.partition(".")
    tampered = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1] + "." + signature
    for bad in (tampered, body, "x." + signature, token + "x", "", "....", "%%%"):
        result = _get(client, admin_headers, **params, **{"$skiptoken": bad})
        assert result.status_code == 400 and result.json["error"]["code"] == "INVALID_QUERY", bad
    other_query = _get(client, admin_headers, **{**params, "$orderby": "id"}, **{"$skiptoken": token})
    assert other_query.status_code == 400
    assert "different" in other_query.json["error"]["details"][0]["message"]


HOSTILE_FILTERS = [
    "status eq 'x",
    "status eq 5",
    "totalAmount eq 'abc'",
    "foo eq 1",
    "version eq 1",
    "customer_id eq 'x'",
    "checkout_url eq null",
    "status eq 'a'; DROP TABLE orders; --",
    "status eq 'a' OR 1=1",
    "status eq 'a' or 1 eq 1",
    "' or ''='",
    "status eq 'a' -- comment",
    "status eq 'a' /* c */",
    "(" * 60 + "status eq 'a'" + ")" * 60,
    "not " * 60 + "status eq 'a'",
    " or ".join(["status eq 'a'"] * 500),
    " or ".join(["id eq 'a'"] * 120),
    "status in (" + ",".join(["'a'"] * 150) + ")",
    "frobnicate(status)",
    "substringof('a', status)",
    "length(status) eq 3",
    "status eq",
    "eq 'a'",
    "",
    "   ",
    "status eq 'a' and",
    "status eq 'a')",
    "(status eq 'a'",
    "status in ()",
    "status in ('a', null)",
    "createdAt gt 2026-13-45",
    "createdAt gt 2026-06-01T25:00:00Z",
    "createdAt gt 2026-06-01T00:00:00",
    "createdAt gt 'yesterday'",
    "totalAmount gt 1.234",
    "totalAmount gt 1e10",
    "itemCount gt 99999999999999999999999",
    "itemCount eq 1.5",
    "status eq 'a\x00b'",
    "statüs eq 'a'",
    "status eq \u2018a\u2019",
    "items/any(i: i/order/id eq 'x')",
    "items/any(i: i/version eq 1)",
    "items/any(i: items/any(j: j/status eq 'x'))",
    "items/foo(i: i/status eq 'x')",
    "items/all()",
    "items eq 'x'",
    "status/length eq 1",
    "contains(status)",
    "contains('abc', status)",
    "year(status) eq 2026",
    "year('2026') eq 2026",
    "status",
    "status eq status eq status",
    "$it/status eq 'a'",
    "@p1 eq 1",
    "status eq @p",
    "status eq 'a' and x'414243' eq 1",
    "Status eq 'a'",
    "status EQ 'a'",
    "null eq null",
    "totalAmount gt null",
    "1 eq 1",
    "'a' eq 'a'",
    "status eq 'a' union select * from api_keys",
    "status eq 0x41",
    "createdAt gt 9999-12-31T23:59:59-05:00",
    "totalAmount gt 12abc",
    "i/status eq 'x'",
    "items/any(status: status eq 'x')",
    "contains(customerId, 'a') eq 'x'",
    "(status) eq (status) and",
]


def test_there_are_enough_hostile_queries():
    assert len(HOSTILE_FILTERS) >= 30


@pytest.mark.parametrize("expression", HOSTILE_FILTERS, ids=[f"h{n:02d}" for n in range(len(HOSTILE_FILTERS))])
def test_hostile_filter_is_invalid_query_with_position(client, admin_headers, expression):
    result = _get(client, admin_headers, **{"$filter": expression})
    assert result.status_code == 400, result.text
    error = result.json["error"]
    assert error["code"] == "INVALID_QUERY"
    [detail] = error["details"]
    assert detail["parameter"] == "$filter"
    assert isinstance(detail["position"], int) and 0 <= detail["position"] <= max(len(expression), 2000)


HOSTILE_OPTIONS = [
    {"$top": "1001"},
    {"$top": "-1"},
    {"$top": "abc"},
    {"$top": "1.5"},
    {"$skip": "-5"},
    {"$skip": "9999999999"},
    {"$orderby": "foo"},
    {"$orderby": "status up"},
    {"$orderby": "status,status"},
    {"$orderby": "status desc,"},
    {"$orderby": "total_amount"},
    {"$orderby": "status; drop table orders"},
    {"$select": "version"},
    {"$select": "id,"},
    {"$expand": "history"},
    {"$count": "maybe"},
    {"$skiptoken": "garbage"},
    {"$unknown": "1"},
    {"filter": "status eq 'a'"},
]


@pytest.mark.parametrize(
    "params", HOSTILE_OPTIONS, ids=[next(iter(p)) + "=" + next(iter(p.values())) for p in HOSTILE_OPTIONS]
)
def test_hostile_options_are_invalid_query(client, admin_headers, params):
    result = _get(client, admin_headers, **params)
    assert result.status_code == 400, result.text
    assert result.json["error"]["code"] == "INVALID_QUERY"
    assert isinstance(result.json["error"]["details"][0]["position"], int)


def test_a_repeated_option_is_invalid_query(client, admin_headers):
    result = client.simulate_get("/api/orders", query_string="$top=1&$top=2", headers=admin_headers)
    assert result.status_code == 400 and result.json["error"]["code"] == "INVALID_QUERY"


# -- property-based: valid filters never fail, arbitrary text is never a 500 ---------------------------

FIELD_KINDS = {
    "id": "string",
    "customerId": "string",
    "status": "string",
    "paymentStatus": "string",
    "paymentMethod": "string",
    "paymentGatewayId": "string",
    "currency": "string",
    "totalAmount": "money",
    "itemCount": "integer",
    "createdAt": "datetime",
    "updatedAt": "datetime",
}
ITEM_KINDS = {"id": "string", "offerId": "string", "status": "string", "price": "money", "quantity": "integer"}
OPS = ["eq", "ne", "gt", "ge", "lt", "le"]

texts = st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=8)
literals = {
    "string": texts.map(q),
    "money": st.decimals(min_value=-(10**9), max_value=10**9, places=2, allow_nan=False, allow_infinity=False).map(
        lambda d: format(d, "f")
    ),
    "integer": st.integers(-(10**9), 10**9).map(str),
    "datetime": st.one_of(
        st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 1, 1)).map(date.isoformat),
        st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2200, 1, 1)).map(
            lambda d: d.strftime("%Y-%m-%dT%H:%M:%S") + "Z"
        ),
    ),
}


@st.composite
def terms(draw: Any, kinds: dict[str, str] = FIELD_KINDS, path: str = "") -> str:
    name = draw(st.sampled_from(sorted(kinds)))
    kind = kinds[name]
    ref = f"{path}{name}"
    shape = draw(st.integers(0, 5))
    if shape == 0 and kind == "string":
        fn = draw(st.sampled_from(["contains", "startswith", "endswith"]))
        inner = draw(st.sampled_from([ref, f"tolower({ref})", f"toupper({ref})"]))
        return f"{fn}({inner}, {draw(literals['string'])})"
    if shape == 1 and kind == "datetime":
        part = draw(st.sampled_from(["year", "month", "day"]))
        return f"{part}({ref}) {draw(st.sampled_from(OPS))} {draw(literals['integer'])}"
    if shape == 2:
        values = draw(st.lists(literals[kind], min_size=1, max_size=4))
        return f"{ref} in ({', '.join(values)})"
    if shape == 3:
        return f"{ref} {draw(st.sampled_from(['eq', 'ne']))} null"
    if shape == 4 and not path:
        return f"items/{draw(st.sampled_from(['any', 'all']))}(i: {draw(terms(ITEM_KINDS, 'i/'))})"
    left, right = ref, draw(literals[kind])
    if draw(st.booleans()):
        left, right = right, left
    return f"{left} {draw(st.sampled_from(OPS))} {right}"


@st.composite
def filters(draw: Any, depth: int = 3) -> str:
    if depth == 0 or draw(st.integers(0, 2)) == 0:
        return draw(terms())
    shape = draw(st.sampled_from(["and", "or", "not"]))
    if shape == "not":
        return f"not ({draw(filters(depth - 1))})"
    return f"({draw(filters(depth - 1))}) {shape} ({draw(filters(depth - 1))})"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expression=filters())
def test_random_valid_filters_are_answered(app, admin, dataset, expression):
    result = testing.TestClient(app).simulate_get(
        "/api/orders", params={"$filter": scoped(expression), "$select": "id"}, headers=auth(admin)
    )
    assert result.status_code == 200, (expression, result.text)
    assert isinstance(result.json["value"], list)


VOCABULARY = [
    "status",
    "totalAmount",
    "createdAt",
    "items/any(i:",
    "i/offerId",
    "eq",
    "gt",
    "and",
    "or",
    "not",
    "in",
    "(",
    ")",
    ",",
    "'x'",
    "''",
    "'",
    "null",
    "12.5",
    "-3",
    "2026-06-01",
    "2026-06-01T00:00:00Z",
    "contains(",
    "tolower(",
    "year(",
    "/",
    ":",
    ";",
    "--",
    "\\",
    "é",
    "\x00",
]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    expression=st.one_of(
        st.text(max_size=120),
        st.text(alphabet=string.printable, max_size=120),
        st.lists(st.sampled_from(VOCABULARY), max_size=25).map(" ".join),
    )
)
def test_arbitrary_filters_are_200_or_invalid_query_never_500(app, admin, dataset, expression):
    result = testing.TestClient(app).simulate_get(
        "/api/orders", params={"$filter": expression, "$top": "1", "$count": "false"}, headers=auth(admin)
    )
    assert result.status_code in (200, 400), (expression, result.text)
    if result.status_code == 400:
        assert result.json["error"]["code"] == "INVALID_QUERY"
        assert isinstance(result.json["error"]["details"][0]["position"], int)
