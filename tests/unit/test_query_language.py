"""Pure checks of the query compilers, the skiptoken and the DST splitting (no database)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from models import Order
from services.kernel.errors import InvalidQuery
from services.orders.metrics import local_midnight, offset_segments
from services.orders.query import compile_filter, compile_orderby, paging


def _sql(expression: str, dialect=sqlite) -> str:  # noqa: ANN001
    return str(select(Order.id).where(compile_filter(expression)).compile(dialect=dialect.dialect()))


def test_values_are_bound_never_inlined():
    hostile = "x' OR '1'='1"
    text = "status eq '" + hostile.replace("'", "''") + "'"
    for dialect in (sqlite, postgresql):
        sql = _sql(text, dialect)
        assert "OR '1'" not in sql and "1'='1" not in sql


@pytest.mark.parametrize(
    ("expression", "position"),
    [
        ("status eq 'a' and foo eq 1", 18),
        ("status eq 'a' and (totalAmount gt 'x')", 34),
        ("status eq 'a' union select", 14),
        ("  bogus(status)", 2),
        ("status eq 'unterminated", 10),
        ("x" * 2001, 2000),
    ],
)
def test_errors_name_the_position(expression, position):
    with pytest.raises(InvalidQuery) as caught:
        compile_filter(expression)
    [detail] = caught.value.details
    assert detail["parameter"] == "$filter" and detail["position"] == position


def test_a_caller_can_name_its_parameter():
    with pytest.raises(InvalidQuery) as caught:
        compile_filter("nope eq 1", parameter="filters.$filter")
    assert caught.value.details[0]["parameter"] == "filters.$filter"


def test_not_binds_looser_than_comparisons_and_tighter_than_and():
    assert "orders.status != ? AND orders.currency = ?" in _sql("not status eq 'a' and currency eq 'b'")


def test_orderby_appends_id_in_the_last_direction():
    assert str(compile_orderby("totalAmount desc")) == "totalAmount desc,id desc"
    assert str(compile_orderby("status, createdAt desc")) == "status asc,createdAt desc,id desc"
    assert str(compile_orderby(None)) == "createdAt desc,id desc"
    assert str(compile_orderby("id desc, status")) == "id desc,status asc"
    with pytest.raises(InvalidQuery) as caught:
        compile_orderby("status, bogus desc")
    assert caught.value.details[0]["position"] == 8


def test_skiptoken_round_trip_and_tamper_check():
    orderby = compile_orderby("totalAmount desc,createdAt")
    values = [Decimal("12.30"), datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), "ord_1"]
    token = paging.encode_token("s3cret", orderby, values, "digest")
    assert paging.decode_token("s3cret", orderby, token, "digest") == values
    with pytest.raises(InvalidQuery):
        paging.decode_token("other-secret", orderby, token, "digest")
    with pytest.raises(InvalidQuery):
        paging.decode_token("s3cret", orderby, token, "another-query")


def test_offset_segments_split_at_dst_changes():
    zone = ZoneInfo("America/New_York")
    start, end = local_midnight(date(2019, 3, 1), zone), local_midnight(date(2019, 11, 30), zone)
    segments = offset_segments(zone, start, end)
    assert segments == [
        (datetime(2019, 3, 1, 5, tzinfo=UTC), -5 * 3600),
        (datetime(2019, 3, 10, 7, tzinfo=UTC), -4 * 3600),
        (datetime(2019, 11, 3, 6, tzinfo=UTC), -5 * 3600),
    ]
    assert offset_segments(ZoneInfo("UTC"), start, end) == [(start, 0)]


def test_sqlite_exact_arithmetic_is_decimal_arithmetic():
    """What SQLite computes for the query language (its money columns are REAL)."""
    from models.sqlite_numeric import exact_arith, exact_cmp

    assert exact_arith("mul", 99.99, 3) == "299.97"  # not 299.96999999999997
    assert (exact_arith("idiv", -7, 2), exact_arith("mod", -7, 2), exact_arith("mod", 7, -4)) == ("-3", "-1", "3")
    assert (exact_arith("round", 2.5, None), exact_arith("round", -2.5, None)) == ("3", "-3")  # away from zero
    assert (exact_arith("floor", "-2.5", None), exact_arith("ceiling", 1e50, None)) == ("-3", "1E+50")
    assert exact_arith("div", 1, 0) is None and exact_arith("mod", 1, 0) is None  # no value: never matches
    assert exact_arith("add", "garbage", 1) is None and exact_arith("add", None, 1) is None
    assert exact_cmp("eq", exact_arith("add", 0.1, 0.2), "0.3") == 1
    assert exact_cmp("gt", None, 1) is None


def test_a_datetime_literal_stands_for_the_span_of_its_last_digit():
    sql = _sql("createdAt eq 2026-06-02T10:30:00Z")
    assert "orders.created_at >= ? AND orders.created_at < ?" in sql
    compiled = select(Order.id).where(compile_filter("createdAt eq 2026-06-02T10:30:00.123Z")).compile()
    bounds = sorted(value for value in compiled.params.values())
    assert bounds == [datetime(2026, 6, 2, 10, 30, 0, 123000, UTC), datetime(2026, 6, 2, 10, 30, 0, 124000, UTC)]


def test_nesting_past_the_limit_names_its_position():
    expression = "itemCount" + " add 1" * 12 + " gt 0"
    with pytest.raises(InvalidQuery) as caught:
        compile_filter(expression)
    [detail] = caught.value.details
    assert "nested too deeply" in detail["message"] and 0 < detail["position"] < len(expression)
