"""A small bounded load generator for reliability scenarios (threads, loopback only)."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests


@dataclass
class Observed:
    status: int
    body: str
    retry_after: str | None
    order_id: str | None = None
    task_id: str | None = None


@dataclass
class LoadRun:
    results: list[Observed] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def record(self, observed: Observed) -> None:
        with self.lock:
            self.results.append(observed)

    def count(self, predicate: Callable[[Observed], bool]) -> int:
        with self.lock:
            return sum(1 for r in self.results if predicate(r))


def order_body(offer_id: str, price: float = 99.99) -> dict:
    return {
        "customerId": "cust_" + secrets.token_hex(4),
        "items": [{"offerId": offer_id, "quantity": 1, "price": price}],
        "paymentMethod": "credit_card",
        "paymentGatewayId": "stripe_1",
    }


def create_orders(
    base: str, headers: dict[str, str], offer_id: str, run: LoadRun, *, threads: int = 8, max_seconds: float = 60
) -> list[threading.Thread]:
    """Start threads that POST orders until ``run.stop`` is set (or ``max_seconds`` pass)."""
    deadline = time.monotonic() + max_seconds

    def loop() -> None:
        session = requests.Session()
        while not run.stop.is_set() and time.monotonic() < deadline:
            try:
                response = session.post(base + "/api/orders", json=order_body(offer_id), headers=headers, timeout=15)
            except requests.RequestException as exc:
                run.record(Observed(0, repr(exc), None))
                continue
            body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
            run.record(
                Observed(
                    response.status_code,
                    response.text,
                    response.headers.get("Retry-After"),
                    body.get("orderId"),
                    body.get("taskId"),
                )
            )

    workers = [threading.Thread(target=loop, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    return workers
