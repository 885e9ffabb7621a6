"""A real browser pays on the sandbox's hosted page: headless Chromium driven over WebDriver."""

from __future__ import annotations

import re

import pytest
import requests

from tests.conftest import unique_customer
from tests.integration.helpers import brief_order, order_row, sandbox_charges
from tests.support.polling import wait_for
from tests.support.webdriver import Browser, find_chromium


@pytest.fixture
def browser():
    found = find_chromium()
    if found is None:
        pytest.skip("headless Chromium is not installed (run scripts/install-test-browser.sh as root; Debian only)")
    instance = Browser(*found)
    yield instance
    instance.quit()


def test_a_browser_follows_payment_url_and_pays(browser, live_server, admin_headers, make_offer, deps, worker):
    order = requests.post(
        f"{live_server.url}/api/orders",
        json=brief_order(make_offer(), unique_customer()),
        headers=admin_headers,
        timeout=10,
    ).json()
    assert order["paymentUrl"] == f"{live_server.url}/api/orders/{order['orderId']}/checkout"
    wait_for(lambda: order_row(deps.db, order["orderId"]).checkout_url, what="the checkout session")

    browser.get(order["paymentUrl"])  # 303 to the sandbox's hosted page
    assert re.search(r"/sandbox/checkout/[\w-]{20,}/cs_sbx_", browser.url)
    assert "Sandbox checkout" in browser.source and "99.99 USD" in browser.source
    browser.click("#pay")
    wait_for(lambda: "/checkout/complete" in browser.url, what="the return to the shop")
    assert "processing" in browser.source
    wait_for(lambda: order_row(deps.db, order["orderId"]).status == "processing", what="the order to be paid")
    assert order_row(deps.db, order["orderId"]).payment_status == "completed"
    assert len(sandbox_charges(deps.db, order["orderId"])) == 1
