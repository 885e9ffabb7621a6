"""The list keeps the statements of first pages it was asked for, and only those it may keep."""

from __future__ import annotations

import pytest

from services.kernel.errors import InvalidQuery
from services.kernel.principal import Principal
from services.orders.listing import ListOrders, _plan_and_statement

ADMIN = Principal(key_id="key_a", role="admin")
OTHER_ADMIN = Principal(key_id="key_b", role="ops")
ALICE = Principal(key_id="key_c", role="customer", customer_id="cust_alice")
BOB = Principal(key_id="key_d", role="customer", customer_id="cust_bob")
SECRET = "s" * 40


def test_a_first_page_is_built_once_per_scope_and_query() -> None:
    query = ListOrders(filter="status eq 'processing'", orderby="createdAt desc", top="50")
    _, first = _plan_and_statement(ADMIN, query, SECRET)
    _, again = _plan_and_statement(OTHER_ADMIN, query, SECRET)
    assert again is first  # staff share one scope


def test_customers_never_share_a_kept_statement() -> None:
    query = ListOrders(top="20")
    _, alice = _plan_and_statement(ALICE, query, SECRET)
    _, bob = _plan_and_statement(BOB, query, SECRET)
    assert alice is not bob
    compiled = bob.compile()
    assert "cust_bob" in compiled.params.values() and "cust_alice" not in compiled.params.values()


def test_now_and_later_pages_are_built_per_request() -> None:
    query = ListOrders(filter="createdAt lt now()")
    assert _plan_and_statement(ADMIN, query, SECRET)[1] is not _plan_and_statement(ADMIN, query, SECRET)[1]


def test_an_invalid_query_is_refused_every_time() -> None:
    for _ in range(2):
        with pytest.raises(InvalidQuery):
            _plan_and_statement(ADMIN, ListOrders(filter="nope eq 1"), SECRET)
