"""Order metrics for a date range, bucketed by local day/week/month, status or customer.

Definitions (also in the OpenAPI description of ``GET /api/orders/metrics``):

* the range is ``startDate`` 00:00 to ``endDate`` 24:00 in ``timezone`` (both dates inclusive);
  an order is in it when its ``createdAt`` is;
* ``totalOrders``: orders created in the range, whatever their status;
* ``totalRevenue``: the sum of ``totalAmount`` over those orders whose payment is captured and
  not refunded, i.e. whose ``paymentStatus`` is in :data:`services.lifecycle.PAYMENT_CAPTURED_STATUSES`;
* ``averageOrderValue``: ``totalRevenue`` / number of those captured orders, rounded to the
  cent (0 when there are none);
* ``ordersByStatus``: ``totalOrders`` split by order status (every lifecycle status, zero-filled);
* ``groups``: the same figures per bucket; time buckets are local calendar days, ISO weeks
  (keyed by their Monday) or months (keyed by their first day), zero-filled across the range.

Counting and summing happen in SQL (revenue as an integer number of cents, exact on both
databases); only the per-bucket rows are folded in Python, with ``Decimal``.

Local time: PostgreSQL converts with ``timezone(tz, created_at)``. SQLite has no time zone
database, so the offsets in force over the range are computed here from ``zoneinfo`` (split at
every DST transition) and applied as a ``CASE`` over UTC instants: exact across DST changes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from sqlalchemy import BigInteger, Date, case, cast, func, literal, select
from sqlalchemy.orm import Session

from models import Database, Order
from models.types import UTCDateTime, utcnow
from services.kernel import lifecycle
from services.kernel.errors import ValidationFailed
from services.kernel.money import CENT, to_money
from services.kernel.principal import Principal

GROUP_BYS = ("day", "week", "month", "status", "customer")
TIME_GROUPS = ("day", "week", "month")
MAX_RANGE_DAYS = 1830
# The range's first instant (local midnight of ``startDate``) and its end (local midnight after
# ``endDate``) must exist as UTC datetimes in every time zone; offsets, historical LMT ones
# included, stay under a day, so one day of margin at both ends of Python's calendar suffices.
# Outside these bounds the conversion overflows (year 0 or 10000), which used to be a 500.
EARLIEST_DATE = date.min + timedelta(days=1)
LATEST_DATE = date.max - timedelta(days=1)
MAX_CUSTOMER_GROUPS = 1000
ORDER_STATUSES = tuple(lifecycle.ORDER_TRANSITIONS)


@dataclass(frozen=True)
class MetricsQuery:
    start_date: date
    end_date: date
    group_by: str = "day"
    timezone: str = "UTC"


@dataclass
class Figures:
    total_orders: int = 0
    revenue_cents: int = 0
    captured_orders: int = 0
    by_status: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ORDER_STATUSES, 0))

    @property
    def total_revenue(self) -> Decimal:
        return (Decimal(self.revenue_cents) * CENT).quantize(CENT)

    @property
    def average_order_value(self) -> Decimal:
        if not self.captured_orders:
            return Decimal("0.00")
        return to_money(self.total_revenue / self.captured_orders)

    def add(self, status: str, orders: int, cents: int, captured: int) -> None:
        self.total_orders += orders
        self.revenue_cents += cents
        self.captured_orders += captured
        self.by_status[status] = self.by_status.get(status, 0) + orders


@dataclass(frozen=True)
class MetricsView:
    totals: Figures
    groups: list[tuple[str, Figures]]
    group_by: str
    timezone: str
    as_of: datetime
    groups_truncated: bool = False


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(available_timezones())


def _check(query: MetricsQuery) -> ZoneInfo:
    problems = []
    if query.group_by not in GROUP_BYS:
        problems.append({"field": "groupBy", "message": f"must be one of {', '.join(GROUP_BYS)}"})
    if query.timezone not in _timezones():
        problems.append({"field": "timezone", "message": "must be an IANA time zone name such as America/New_York"})
    for name, day in (("startDate", query.start_date), ("endDate", query.end_date)):
        if not EARLIEST_DATE <= day <= LATEST_DATE:
            problems.append(
                {"field": name, "message": f"must be between {EARLIEST_DATE.isoformat()} and {LATEST_DATE.isoformat()}"}
            )
    if query.end_date < query.start_date:
        problems.append({"field": "endDate", "message": "must not be before startDate"})
    elif (query.end_date - query.start_date).days + 1 > MAX_RANGE_DAYS:
        problems.append({"field": "endDate", "message": f"the range spans at most {MAX_RANGE_DAYS} days"})
    if problems:
        raise ValidationFailed("Invalid metrics query.", details=problems)
    return ZoneInfo(query.timezone)


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) of ``day`` in ``zone`` (a skipped midnight maps to the first real instant)."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def _offset(zone: ZoneInfo, instant: datetime) -> int:
    offset = instant.astimezone(zone).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def offset_segments(zone: ZoneInfo, start: datetime, end: datetime) -> list[tuple[datetime, int]]:
    """``[(from_instant, utc_offset_seconds), ...]`` covering ``[start, end)``, split at each transition."""
    segments = [(start, _offset(zone, start))]
    step = timedelta(hours=6)
    probe = start
    while probe < end:
        following = min(probe + step, end)
        if _offset(zone, following) != segments[-1][1]:
            low, high = probe, following  # offset(low) == current, offset(high) differs
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                if _offset(zone, middle) == segments[-1][1]:
                    low = middle
                else:
                    high = middle
            high = high.replace(microsecond=0)
            segments.append((high, _offset(zone, high)))
        probe = following
    return segments


def _sqlite_bucket(group_by: str, segments: list[tuple[datetime, int]]) -> Any:
    modifiers = [f"{offset:+d} seconds" for _, offset in segments]
    if len(segments) == 1:
        shift: Any = literal(modifiers[0])
    else:
        shift = case(
            *[
                (Order.created_at < literal(boundary, UTCDateTime()), literal(modifier))
                for (boundary, _), modifier in zip(segments[1:], modifiers, strict=False)
            ],
            else_=literal(modifiers[-1]),
        )
    # Whole seconds only: SQLite's date functions round to the millisecond, which would carry
    # 23:59:59.9996 into the next day.
    seconds = func.substr(Order.created_at, 1, 19)
    if group_by == "day":
        return func.date(seconds, shift)
    if group_by == "week":
        return func.date(seconds, shift, literal("weekday 0"), literal("-6 days"))
    return func.strftime(literal("%Y-%m-01"), seconds, shift)


def _postgres_bucket(group_by: str, timezone: str) -> Any:
    return cast(func.date_trunc(group_by, func.timezone(timezone, Order.created_at)), Date)


def _bucket_expression(session: Session, query: MetricsQuery, zone: ZoneInfo, start: datetime, end: datetime) -> Any:
    if query.group_by == "status":
        return Order.status
    if query.group_by == "customer":
        return Order.customer_id
    if session.get_bind().dialect.name == "sqlite":
        return _sqlite_bucket(query.group_by, offset_segments(zone, start, end))
    return _postgres_bucket(query.group_by, query.timezone)


def _bucket_keys(query: MetricsQuery) -> list[str]:
    """Every time bucket of the range, so that empty days/weeks/months appear with zeros.

    The loop stops at the bucket holding ``endDate`` instead of stepping past it: the step after
    the last bucket of December 9999 would be a date Python cannot represent.
    """
    keys: list[str] = []
    day = query.start_date
    if query.group_by == "week":
        day -= timedelta(days=day.weekday())
    elif query.group_by == "month":
        day = day.replace(day=1)
    step = timedelta(days=7 if query.group_by == "week" else 1)
    while True:
        keys.append(day.isoformat())
        if query.group_by == "month":
            if (day.year, day.month) == (query.end_date.year, query.end_date.month):
                return keys
            day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
        else:
            if query.end_date - day < step:
                return keys
            day += step


def _key_text(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def order_metrics(db: Database, principal: Principal, query: MetricsQuery) -> MetricsView:
    """Totals and per-bucket figures for orders created in the query's local date range."""
    principal.require_role("admin", "ops")
    zone = _check(query)
    start = local_midnight(query.start_date, zone)
    end = local_midnight(query.end_date + timedelta(days=1), zone)
    in_range = [Order.created_at >= start, Order.created_at < end]
    captured = Order.payment_status.in_(lifecycle.PAYMENT_CAPTURED_STATUSES)
    figures = [
        func.count(),
        func.coalesce(func.sum(case((captured, cast(func.round(Order.total_amount * 100), BigInteger)), else_=0)), 0),
        func.coalesce(func.sum(case((captured, 1), else_=0)), 0),
    ]
    as_of = utcnow()
    truncated = False
    with db.reader() as session:
        totals = Figures()
        if query.group_by == "customer":  # groups may be truncated: the totals need their own pass
            for status, orders, cents, paid in session.execute(
                select(Order.status, *figures).where(*in_range).group_by(Order.status)
            ):
                totals.add(status, int(orders), int(cents), int(paid))

        bucket = _bucket_expression(session, query, zone, start, end).label("bucket")
        conditions = list(in_range)
        if query.group_by == "customer":
            top = list(
                session.scalars(
                    select(Order.customer_id)
                    .where(*in_range)
                    .group_by(Order.customer_id)
                    .order_by(func.count().desc(), Order.customer_id)
                    .limit(MAX_CUSTOMER_GROUPS + 1)
                )
            )
            truncated = len(top) > MAX_CUSTOMER_GROUPS
            conditions.append(Order.customer_id.in_(top[:MAX_CUSTOMER_GROUPS]))
        grouped: dict[str, Figures] = defaultdict(Figures)
        if query.group_by in TIME_GROUPS:
            for key in _bucket_keys(query):
                grouped[key] = Figures()
        rows = session.execute(select(bucket, Order.status, *figures).where(*conditions).group_by(bucket, Order.status))
        for key, status, orders, cents, paid in rows:
            grouped[_key_text(key)].add(status, int(orders), int(cents), int(paid))
            if query.group_by != "customer":  # the buckets partition the range: fold the totals
                totals.add(status, int(orders), int(cents), int(paid))

    groups = sorted(grouped.items())
    if query.group_by == "customer":
        groups.sort(key=lambda item: (-item[1].total_orders, item[0]))
    return MetricsView(
        totals=totals,
        groups=groups,
        group_by=query.group_by,
        timezone=query.timezone,
        as_of=as_of,
        groups_truncated=truncated,
    )
