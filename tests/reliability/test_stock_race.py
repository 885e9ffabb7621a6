"""200 concurrent buyers for 10 units of stock, over HTTP through gunicorn: exactly 10 orders."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests
from sqlalchemy import func, select

from models import OrderItem
from services.orders.offers import get_offer
from tests.conftest import auth
from tests.reliability.conftest import wait_ready
from tests.reliability.load import order_body
from tests.support.processes import start_web, stop_process
from workers.embedded_redis import free_port


def test_two_hundred_buyers_ten_units(settings, deps, admin, make_offer, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = start_web(settings, port, tmp_path / "web.log", workers=4, threads=16)
    try:
        wait_ready(base)
        offer = make_offer(stock=10)
        headers = auth(admin)

        def buy(_: int) -> tuple[int, str | None]:
            response = requests.post(base + "/api/orders", json=order_body(offer), headers=headers, timeout=60)
            return response.status_code, (response.json().get("error") or {}).get("code")

        with ThreadPoolExecutor(max_workers=200) as pool:
            outcomes = Counter(pool.map(buy, range(200)))
    finally:
        stop_process(web)

    assert outcomes == {(201, None): 10, (400, "INSUFFICIENT_INVENTORY"): 190}, outcomes
    with deps.db.reader() as session:
        sold = session.scalar(select(func.count()).select_from(OrderItem).where(OrderItem.offer_id == offer))
    assert sold == 10
    view = get_offer(deps.db, offer)
    assert (view.stock_available, view.stock_reserved) == (0, 10)
