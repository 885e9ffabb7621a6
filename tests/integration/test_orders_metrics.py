"""``GET /api/orders/metrics`` against a brute-force Python computation over the same rows.

The rows sit in a date range no other test writes to (2019), cluster around UTC and New York
midnights, cross a month boundary and New York's 2019-03-10 DST change, and carry amounts whose
float sum would drift (0.10, 0.20, 33.33).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from zoneinfo import ZoneInfo

import pytest

from services.kernel.lifecycle import ORDER_TRANSITIONS, PAYMENT_CAPTURED_STATUSES
from tests.conftest import auth
from tests.integration.orders_data import Row, insert_rows, prefix

P = prefix()
FIRST, LAST = date(2019, 2, 24), date(2019, 3, 13)
START, END = "2019-02-25", "2019-03-12"
TIMES = [
    (0, 0, 0, 0),
    (0, 30, 0, 0),
    (3, 59, 59, 999999),
    (4, 0, 0, 0),
    (4, 59, 59, 999999),
    (5, 0, 0, 0),
    (6, 59, 0, 0),
    (12, 0, 0, 0),
    (23, 59, 59, 999999),
]
AMOUNTS = ["0.10", "0.20", "33.33", "99.99", "0.01", "1250.00"]


def _rows() -> list[Row]:
    rng = random.Random(2019)
    rows = []
    day = FIRST
    n = 0
    while day <= LAST:
        for hour, minute, second, micro in TIMES:
            created = datetime(day.year, day.month, day.day, hour, minute, second, micro, tzinfo=UTC)
            rows.append(
                Row(
                    id=f"ord_{P}{n:04d}",
                    customer_id=f"{P}c{rng.randrange(4)}",
                    status=rng.choice(list(ORDER_TRANSITIONS)),
                    payment_status=rng.choice(["unpaid", "completed", "completed", "refunded"]),
                    payment_method="credit_card",
                    payment_gateway_id="sandbox",
                    total_amount=Decimal(rng.choice(AMOUNTS)),
                    currency="USD",
                    created_at=created,
                    updated_at=created,
                )
            )
            n += 1
        day += timedelta(days=1)
    return rows


ROWS = _rows()


@pytest.fixture(scope="module")
def dataset(deps) -> list[Row]:  # noqa: ANN001
    insert_rows(deps.db, ROWS)
    return ROWS


def _figures(rows: list[Row]) -> dict:
    captured = [row for row in rows if row.payment_status in PAYMENT_CAPTURED_STATUSES]
    revenue = sum((row.total_amount for row in captured), Decimal("0.00"))
    average = (revenue / len(captured)).quantize(Decimal("0.01"), ROUND_HALF_EVEN) if captured else Decimal(0)
    counts = Counter(row.status for row in rows)
    return {
        "totalOrders": len(rows),
        "totalRevenue": revenue,
        "averageOrderValue": average,
        "ordersByStatus": {status: counts.get(status, 0) for status in ORDER_TRANSITIONS},
    }


def _expected(rows: list[Row], group_by: str, timezone: str) -> dict:
    zone = ZoneInfo(timezone)
    start, end = date.fromisoformat(START), date.fromisoformat(END)

    def local(row: Row) -> date:
        return row.created_at.astimezone(zone).date()

    chosen = [row for row in rows if start <= local(row) <= end]
    keys = {
        "day": lambda row: local(row).isoformat(),
        "week": lambda row: (local(row) - timedelta(days=local(row).weekday())).isoformat(),
        "month": lambda row: local(row).replace(day=1).isoformat(),
        "status": lambda row: row.status,
        "customer": lambda row: row.customer_id,
    }
    buckets: dict[str, list[Row]] = {}
    if group_by == "day":
        buckets = {(start + timedelta(days=n)).isoformat(): [] for n in range((end - start).days + 1)}
    elif group_by == "week":
        monday = start - timedelta(days=start.weekday())
        buckets = {(monday + timedelta(weeks=n)).isoformat(): [] for n in range((end - monday).days // 7 + 1)}
    elif group_by == "month":
        buckets = {"2019-02-01": [], "2019-03-01": []}
    for row in chosen:
        buckets.setdefault(keys[group_by](row), []).append(row)
    groups = [{"key": key, **_figures(members)} for key, members in sorted(buckets.items())]
    if group_by == "customer":
        groups.sort(key=lambda group: (-group["totalOrders"], group["key"]))
    return {
        **_figures(chosen),
        "groupBy": group_by,
        "timezone": timezone,
        "groups": groups,
        "groupsTruncated": False,
    }


@pytest.mark.parametrize("timezone", ["UTC", "America/New_York"])
@pytest.mark.parametrize("group_by", ["day", "week", "month", "status", "customer"])
def test_metrics_match_brute_force(client, admin_headers, dataset, timezone, group_by):
    params = {"startDate": START, "endDate": END, "groupBy": group_by, "timezone": timezone}
    result = client.simulate_get("/api/orders/metrics", params=params, headers=admin_headers)
    assert result.status_code == 200, result.text
    body = json.loads(result.text, parse_float=Decimal)
    as_of = body.pop("asOf")
    assert as_of.endswith("Z")
    expected = _expected(dataset, group_by, timezone)
    assert body == expected
    assert '"totalRevenue":' in result.text and body["totalRevenue"] == body["totalRevenue"].quantize(Decimal("0.01"))


def test_the_two_time_zones_really_differ(client, admin_headers, dataset):
    answers = [
        client.simulate_get(
            "/api/orders/metrics",
            params={"startDate": START, "endDate": END, "groupBy": "day", "timezone": tz},
            headers=admin_headers,
        ).json
        for tz in ("UTC", "America/New_York")
    ]
    assert answers[0]["totalOrders"] != answers[1]["totalOrders"] or answers[0]["groups"] != answers[1]["groups"]
    # Across New York's DST change (2019-03-10) a local day starts at 05:00 UTC before and 04:00 UTC after.
    ny = {group["key"]: group["totalOrders"] for group in answers[1]["groups"]}
    assert ny["2019-03-10"] == _expected(ROWS, "day", "America/New_York")["groups"][13]["totalOrders"]


def test_metrics_defaults_and_an_empty_range(client, admin_headers, dataset):
    result = client.simulate_get(
        "/api/orders/metrics", params={"startDate": "1990-01-01", "endDate": "1990-01-02"}, headers=admin_headers
    )
    assert result.status_code == 200, result.text
    body = result.json
    assert (body["totalOrders"], body["totalRevenue"], body["averageOrderValue"]) == (0, 0, 0)
    assert body["groupBy"] == "day" and body["timezone"] == "UTC"
    assert [group["key"] for group in body["groups"]] == ["1990-01-01", "1990-01-02"]


def test_metrics_are_for_staff_only(client, make_key, dataset):
    params = {"startDate": START, "endDate": END}
    customer = client.simulate_get("/api/orders/metrics", params=params, headers=auth(make_key("customer", f"{P}c1")))
    assert customer.status_code == 403 and customer.json["error"]["code"] == "FORBIDDEN"
    ops = client.simulate_get("/api/orders/metrics", params=params, headers=auth(make_key("ops")))
    assert ops.status_code == 200


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"endDate": END}, "startDate"),
        ({"startDate": "2019-02-30", "endDate": END}, "startDate"),
        ({"startDate": END, "endDate": START}, "endDate"),
        ({"startDate": START, "endDate": END, "timezone": "Mars/Olympus"}, "timezone"),
        ({"startDate": START, "endDate": END, "timezone": "../../etc/passwd"}, "timezone"),
        ({"startDate": START, "endDate": END, "groupBy": "hour"}, "groupBy"),
        ({"startDate": START, "endDate": END, "extra": "1"}, "extra"),
        ({"startDate": "2000-01-01", "endDate": "2019-01-01"}, "endDate"),
    ],
)
def test_bad_metrics_parameters_are_400(client, admin_headers, params, field):
    result = client.simulate_get("/api/orders/metrics", params=params, headers=admin_headers)
    assert result.status_code == 400, result.text
    assert result.json["error"]["code"] == "VALIDATION_ERROR"
    assert field in [detail["field"] for detail in result.json["error"]["details"]]


def test_openapi_documents_the_definitions_and_both_routes(client):
    doc = client.simulate_get("/api/openapi.json").json
    metrics = doc["paths"]["/api/orders/metrics"]["get"]
    description = metrics["summary"] + metrics.get("description", "")
    for phrase in ("totalOrders", "totalRevenue", "captured and not", "averageOrderValue", "0 when there are none"):
        assert phrase in description
    assert {p["name"] for p in metrics["parameters"]} == {"startDate", "endDate", "groupBy", "timezone"}
    listing = doc["paths"]["/api/orders"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"$filter", "$orderby", "$top", "$skip", "$count"}
