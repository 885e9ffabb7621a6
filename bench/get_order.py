"""Get order: ``GET /api/orders/{id}`` spread over a few thousand orders, service vs the floor's
AUTOCOMMIT select of the order and its items.

The orders are inserted straight into the database (not through the API) so this workload
stands alone; each wrk thread walks the ids from its own offset.
"""

from __future__ import annotations

from bench.harness import Figure, Stack, Workload, compare_http
from bench.http_load import lua_script

NAME = "get order"
ORDERS = 3000


def run(stack: Stack) -> list[Figure]:
    ids = stack.seed_orders(ORDERS)
    headers = {"Authorization": stack.headers["Authorization"]}
    script = lua_script(method="GET", headers=headers, paths=[f"/api/orders/{order_id}" for order_id in ids])
    with stack.web("bench.floor_app:get_app()", "floor") as floor_url:
        return compare_http(stack, NAME, "/api/orders", script, floor_url)


def workloads() -> list[Workload]:
    return [Workload(NAME, run, f"GET /api/orders/{{id}} over {ORDERS} ids, 32 clients")]
