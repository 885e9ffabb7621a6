"""Create order: ``POST /api/orders`` at 32 concurrent clients, service vs :mod:`bench.floor_app`.

Both sides get the brief's body against the one seeded offer, so the service also pays for the
contention of reserving stock on a single hot row, as a flash sale would. No ``Idempotency-Key``
is sent: the floor has no idempotency store, and the header is optional in the contract.
"""

from __future__ import annotations

from bench.harness import ORDER_BODY, Figure, Stack, Workload, throughput_figures
from bench.http_load import load, lua_script

NAME = "create order"


def run(stack: Stack) -> list[Figure]:
    options = stack.options
    script = lua_script(method="POST", body=ORDER_BODY, headers=stack.headers)

    def measure(base: str) -> object:
        result = load(
            base + "/api/orders",
            script=script,
            connections=options.connections,
            duration=options.duration,
            warmup=options.warmup,
        )
        stack.settle()  # the checkout messages queued under load are drained before anything else runs
        return result

    service = measure(stack.service_url)
    with stack.web("bench.floor_app:get_app()", "floor") as floor_url:
        floor = measure(floor_url)
    return throughput_figures(NAME, service, floor)


def workloads() -> list[Workload]:
    return [Workload(NAME, run, "POST /api/orders with the brief's body on one seeded offer, 32 clients")]
