"""Create order: ``POST /api/orders`` at 32 concurrent clients, service vs :mod:`bench.floor_app`.

Both sides get the brief's body against the one seeded offer, so the service also pays for the
contention of reserving stock on a single hot row, as a flash sale would. No ``Idempotency-Key``
is sent: the floor has no idempotency store, and the header is optional in the contract.
"""

from __future__ import annotations

from bench.harness import ORDER_BODY, Figure, Stack, Workload, compare_http
from bench.http_load import lua_script

NAME = "create order"


def run(stack: Stack) -> list[Figure]:
    script = lua_script(method="POST", body=ORDER_BODY, headers=stack.headers)
    with stack.web("bench.floor_app:get_app()", "floor") as floor_url:
        return compare_http(stack, NAME, "/api/orders", script, floor_url)


def workloads() -> list[Workload]:
    return [Workload(NAME, run, "POST /api/orders with the brief's body on one seeded offer, 32 clients")]
