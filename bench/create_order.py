"""Create order: ``POST /api/orders`` at 32 concurrent clients, service vs :mod:`bench.floor_app`.

Two workloads:

- **create order**: the brief's body against the one seeded offer, so the service also pays for
  the contention of reserving stock on a single hot row, as a flash sale would;
- **create order (1,000 offers)**: each request names one of 1,000 offers, so no row is hot.

Each is measured against two floors in the same rounds: the bare floor (parse, insert order and
item, enqueue) and the *reservation floor* (the same plus the service's conditional stock UPDATE),
so the price of the hot row and the price of the service's own code show apart. No
``Idempotency-Key`` is sent: the floor has no idempotency store, and the header is optional.
"""

from __future__ import annotations

import json
from decimal import Decimal

from bench.harness import ORDER_BODY, Figure, Stack, Workload, compare_http
from bench.http_load import lua_script, rotating_script
from services.orders.offers import upsert_offer

NAME = "create order"
SPREAD_NAME = "create order (1,000 offers)"
SPREAD_OFFERS = 1000


def _compare(stack: Stack, name: str, script: str) -> list[Figure]:
    with (
        stack.web("bench.floor_app:get_app()", "floor") as floor_url,
        stack.web("bench.floor_app:get_reserving_app()", "reservation-floor") as reserving_url,
    ):
        return compare_http(stack, name, "/api/orders", script, floor_url, other_floors={"reservation": reserving_url})


def run(stack: Stack) -> list[Figure]:
    return _compare(stack, NAME, lua_script(method="POST", body=ORDER_BODY, headers=stack.headers))


def run_spread(stack: Stack) -> list[Figure]:
    bodies = []
    for index in range(SPREAD_OFFERS):
        offer_id = f"offer_spread_{index:04d}"
        upsert_offer(stack.db, offer_id, name="Spread offer", price=Decimal("99.99"), stock=10**9, currency="USD")
        body = json.loads(ORDER_BODY)
        body["items"][0]["offerId"] = offer_id
        bodies.append(("POST", "/api/orders", json.dumps(body, separators=(",", ":"))))
    return _compare(stack, SPREAD_NAME, rotating_script(bodies, headers=stack.headers))


def workloads() -> list[Workload]:
    return [
        Workload(NAME, run, "POST /api/orders with the brief's body on one seeded offer, 32 clients"),
        Workload(SPREAD_NAME, run_spread, "POST /api/orders over 1,000 offers (no hot row), 32 clients"),
    ]
