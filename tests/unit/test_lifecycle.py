"""The lifecycle table and the If-Match parser: pure logic."""

from __future__ import annotations

from api.preconditions import if_match_versions as parse_if_match
from services.kernel import lifecycle


def test_the_table_is_the_contracts_lifecycle():
    assert lifecycle.ORDER_TRANSITIONS == {
        "pending_payment": ("processing", "cancelled"),
        "processing": ("shipped", "cancelled"),
        "shipped": ("completed",),
        "completed": ("refunded",),
        "cancelled": (),
        "refunded": (),
    }
    assert lifecycle.ITEM_TRANSITIONS == {
        "pending": ("verified", "cancelled"),
        "verified": ("fulfilled", "cancelled"),
        "fulfilled": (),
        "cancelled": (),
    }


def test_every_target_is_a_known_status():
    for table in (lifecycle.ORDER_TRANSITIONS, lifecycle.ITEM_TRANSITIONS):
        assert all(target in table for targets in table.values() for target in targets)


def test_describe_lists_every_state_with_its_transitions():
    described = lifecycle.describe()
    order = {s["status"]: s for s in described["order"]["states"]}
    assert described["order"]["initial"] == "pending_payment"
    assert order["pending_payment"]["allowedTransitions"] == ["processing", "cancelled"]
    assert order["cancelled"]["terminal"] and not order["shipped"]["terminal"]
    assert [s["status"] for s in described["item"]["states"]] == ["pending", "verified", "fulfilled", "cancelled"]
    assert described["itemActions"] == {"cancel": "cancelled", "verify": "verified"}


def test_if_match_parsing():
    assert parse_if_match(None) is None
    assert parse_if_match("*") is None
    assert parse_if_match('"3"') == {3}
    assert parse_if_match('W/"3", "4"') == {3, 4}
    assert parse_if_match("7") == {7}
    assert parse_if_match('"abc"') == frozenset()  # names no version: fails the precondition
