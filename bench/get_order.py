"""Get order: ``GET /api/orders/{id}`` spread over a few thousand orders, service vs the floor's
AUTOCOMMIT select of the order and its items.

The orders are inserted straight into the database (not through the API) so this workload
stands alone; each wrk thread walks the ids from its own offset.
"""

from __future__ import annotations

from bench.harness import Figure, Stack, Workload, throughput_figures
from bench.http_load import load, lua_script

NAME = "get order"
ORDERS = 3000


def run(stack: Stack) -> list[Figure]:
    options = stack.options
    ids = stack.seed_orders(ORDERS)
    headers = {"Authorization": stack.headers["Authorization"]}
    script = lua_script(method="GET", headers=headers, paths=[f"/api/orders/{order_id}" for order_id in ids])

    def measure(base: str) -> object:
        return load(
            base + "/api/orders",
            script=script,
            connections=options.connections,
            duration=options.duration,
            warmup=options.warmup,
        )

    service = measure(stack.service_url)
    with stack.web("bench.floor_app:get_app()", "floor") as floor_url:
        floor = measure(floor_url)
    return throughput_figures(NAME, service, floor)


def workloads() -> list[Workload]:
    return [Workload(NAME, run, f"GET /api/orders/{{id}} over {ORDERS} ids, 32 clients")]
