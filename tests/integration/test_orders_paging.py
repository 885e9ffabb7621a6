"""Keyset paging under concurrent inserts: walking every page never repeats nor skips a row.

A writer thread keeps inserting orders whose sort keys land anywhere in the ordering (before and
after the cursor) while the test walks ``nextLink``; after every page the walker waits until the
writer has committed at least one more row, so inserts interleave with the walk for certain.
"""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.integration.orders_data import Row, insert_rows, prefix
from tests.support.polling import wait_for

START = datetime(2018, 1, 1, tzinfo=UTC)


def _row(rng: random.Random, order_id: str, customer: str) -> Row:
    created = START + timedelta(seconds=rng.randrange(0, 31 * 86400), microseconds=rng.randrange(0, 10**6))
    return Row(
        id=order_id,
        customer_id=customer,
        status=rng.choice(["pending_payment", "processing", "completed"]),
        payment_status="unpaid",
        payment_method="credit_card",
        payment_gateway_id="sandbox",
        # few distinct amounts, so the totalAmount ordering has many ties for the id to break
        total_amount=Decimal(rng.choice(["10.00", "20.00", "30.00", "40.00"])),
        currency="USD",
        created_at=created,
        updated_at=created,
    )


class Writer(threading.Thread):
    def __init__(self, db, customer: str, seed: int) -> None:  # noqa: ANN001
        super().__init__(daemon=True)
        self.db, self.customer, self.rng = db, customer, random.Random(seed)
        self.stop = threading.Event()
        self.inserted = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                insert_rows(self.db, [_row(self.rng, f"ord_{self.customer}x{self.inserted:05d}", self.customer)])
                self.inserted += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


@pytest.mark.parametrize("orderby", ["createdAt desc", "totalAmount asc,createdAt desc", "totalAmount desc"])
def test_walking_pages_while_orders_arrive_never_skips_or_repeats(client, admin_headers, deps, orderby):
    customer = prefix()
    rng = random.Random(orderby)
    initial = [_row(rng, f"ord_{customer}{n:05d}", customer) for n in range(120)]
    insert_rows(deps.db, initial)

    writer = Writer(deps.db, customer, seed=len(orderby))
    params = {"$filter": f"customerId eq '{customer}'", "$orderby": orderby, "$top": "10", "$select": "id"}
    seen: list[str] = []
    writer.start()
    try:
        while True:
            before = writer.inserted
            result = client.simulate_get("/api/orders", params=params, headers=admin_headers)
            assert result.status_code == 200, result.text
            seen.extend(entry["id"] for entry in result.json["value"])
            link = result.json.get("nextLink")
            if link is None:
                break
            params = dict(parse_qsl(urlsplit(link).query))
            wait_for(lambda before=before: writer.error or writer.inserted > before, timeout=10, what="an insert")
            assert writer.error is None, writer.error
    finally:
        writer.stop.set()
        writer.join(timeout=10)
    assert writer.error is None, writer.error
    assert writer.inserted >= 12  # at least one insert between every two pages
    assert len(seen) == len(set(seen)), "a row was served twice"
    missing = {row.id for row in initial} - set(seen)
    assert not missing, f"rows skipped: {sorted(missing)[:5]}"
