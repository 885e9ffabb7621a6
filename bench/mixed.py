"""Mixed load: 70 % get order, 20 % list, 10 % create order, at 64 clients, service vs the floor
(the floor app answers the same three paths with the bare stack's work for each)."""

from __future__ import annotations

import random

from bench.harness import ORDER_BODY, Figure, Stack, Workload, compare_http
from bench.http_load import rotating_script

NAME = "mixed 70/20/10"
ORDERS = 3000
CONNECTIONS = 64
LIST_PATH = "/api/orders?$filter=status%20eq%20'pending_payment'&$top=20"


def run(stack: Stack) -> list[Figure]:
    ids = stack.seed_orders(ORDERS)
    rng = random.Random(7)
    requests: list[tuple[str, str, str | None]] = []
    for index in range(200):
        if index % 10 == 0:
            requests.append(("POST", "/api/orders", ORDER_BODY))
        elif index % 10 in (1, 2):
            requests.append(("GET", LIST_PATH, None))
        else:
            requests.append(("GET", f"/api/orders/{rng.choice(ids)}", None))
    rng.shuffle(requests)
    script = rotating_script(requests, headers=stack.headers)
    with stack.web("bench.floor_app:get_app()", "floor") as floor_url:
        return compare_http(stack, NAME, "/api/orders", script, floor_url, connections=CONNECTIONS)


def workloads() -> list[Workload]:
    return [Workload(NAME, run, "70 % GET order, 20 % list a status page, 10 % create, 64 clients")]
