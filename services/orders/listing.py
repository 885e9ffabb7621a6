"""Listing orders: the OData query of ``GET /api/orders`` run as one read.

The caller hands over the raw query options (strings, exactly as received); this use case
validates them (every problem is :class:`InvalidQuery` with its parameter and position), scopes
customers to their own orders, and answers one page plus the total count and an opaque keyset
token for the next page.

Entries carry their ``items``, as the brief's list shows. ``$select`` names the fields to return;
``items`` is among them only when named there or asked for with ``$expand=items`` (a client that
selects ``id,status`` wants neither the items nor their query).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, false, func, select
from sqlalchemy.sql.elements import ColumnElement

from models import Database, Order, OrderItem
from services.kernel.errors import InvalidQuery
from services.kernel.principal import Principal
from services.orders.query import paging
from services.orders.query.fields import FIELDS
from services.orders.query.filter import compile_filter
from services.orders.query.orderby import OrderBy, compile_orderby
from services.orders.views import ItemView

DEFAULT_TOP = 50
MAX_TOP = 1000
MAX_SKIP = 100_000
EXPANDABLE = ("items",)
SELECTABLE = (*FIELDS, *EXPANDABLE)
_DIGITS = re.compile(r"^[0-9]{1,9}$", re.ASCII)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)


@dataclass(frozen=True)
class ListOrders:
    """The raw query options (``None`` when absent)."""

    filter: str | None = None
    orderby: str | None = None
    top: str | None = None
    skip: str | None = None
    count: str | None = None
    select: str | None = None
    expand: str | None = None
    skiptoken: str | None = None


@dataclass(frozen=True)
class OrderRow:
    id: str
    customer_id: str
    status: str
    payment_status: str
    payment_method: str
    payment_gateway_id: str
    total_amount: Decimal
    currency: str
    item_count: int
    created_at: datetime
    updated_at: datetime
    items: list[ItemView] | None = None


@dataclass(frozen=True)
class OrderPage:
    rows: list[OrderRow]
    count: int | None
    next_token: str | None
    fields: tuple[str, ...]  # the API fields to render, in contract order
    expand_items: bool


def _integer(parameter: str, raw: str | None, default: int, maximum: int) -> int:
    if raw is None:
        return default
    if not _DIGITS.match(raw):
        raise InvalidQuery.at(parameter, 0, "expected a non-negative whole number")
    value = int(raw)
    if value > maximum:
        raise InvalidQuery.at(parameter, 0, f"at most {maximum}")
    return value


def _names(parameter: str, raw: str | None, allowed: tuple[str, ...] | dict[str, Any]) -> list[str]:
    """A comma-separated list of names, each checked against ``allowed``."""
    if raw is None:
        return []
    names: list[str] = []
    position = 0
    for part in raw.split(","):
        name = part.strip()
        offset = position + len(part) - len(part.lstrip())
        if not _NAME.fullmatch(name):
            raise InvalidQuery.at(parameter, offset, "expected a comma-separated list of names")
        if name not in allowed:
            raise InvalidQuery.at(parameter, offset, f"unknown name {name!r}; allowed: {', '.join(allowed)}")
        if name not in names:
            names.append(name)
        position += len(part) + 1
    return names


def _count_wanted(raw: str | None) -> bool:
    if raw is None:
        return True
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise InvalidQuery.at("$count", 0, "expected true or false")


def scope(principal: Principal) -> list[ColumnElement[bool]]:
    """The rows a caller may see: staff everything, a customer only its own orders."""
    if principal.is_staff:
        return []
    if principal.customer_id is None:
        return [false()]
    return [Order.customer_id == principal.customer_id]


def _digest(filter_text: str | None, orderby: OrderBy) -> str:
    return paging.query_digest(filter_text or "", str(orderby))


_COLUMNS = [spec.column for spec in FIELDS.values()]
_WIDTH = len(_COLUMNS)


@dataclass(frozen=True)
class _Plan:
    """The options, checked: every problem is raised before anything is read."""

    conditions: list[ColumnElement[bool]]  # what the count counts
    page_conditions: list[ColumnElement[bool]]  # what the page reads (after the skiptoken)
    orderby: OrderBy
    top: int
    skip: int
    want_count: bool
    fields: tuple[str, ...]
    expand_items: bool
    digest: str


def _plan(principal: Principal, query: ListOrders, secret_key: str) -> _Plan:
    conditions = scope(principal)
    if query.filter is not None:
        conditions.append(compile_filter(query.filter))
    orderby = compile_orderby(query.orderby)
    top = _integer("$top", query.top, DEFAULT_TOP, MAX_TOP)
    skip = _integer("$skip", query.skip, 0, MAX_SKIP)
    want_count = _count_wanted(query.count)
    selected = _names("$select", query.select, SELECTABLE)
    fields = tuple(name for name in FIELDS if name in selected) if selected else tuple(FIELDS)
    expanded = _names("$expand", query.expand, EXPANDABLE)
    expand_items = not selected or "items" in selected or bool(expanded)
    digest = _digest(query.filter, orderby)
    page_conditions = list(conditions)
    if query.skiptoken is not None:
        page_conditions.append(paging.after(orderby, paging.decode_token(secret_key, orderby, query.skiptoken, digest)))
    return _Plan(conditions, page_conditions, orderby, top, skip, want_count, fields, expand_items, digest)


_ITEMS = OrderItem.__table__
_ITEM_COLUMNS = [
    _ITEMS.c.id.label("item_id"),
    _ITEMS.c.offer_id.label("item_offer_id"),
    _ITEMS.c.quantity.label("item_quantity"),
    _ITEMS.c.price.label("item_price"),
    _ITEMS.c.status.label("item_status"),
]


def _page_statement(plan: _Plan) -> Select[Any]:
    """The page, its entries' items and the total count in ONE statement: the page (``top + 1``
    rows, to know whether another follows) as a subquery numbered in its order, its items joined
    to it, and the count as an uncorrelated scalar subquery the database evaluates once."""
    page = (
        select(*_COLUMNS, func.row_number().over(order_by=plan.orderby.clauses).label("page_position"))
        .where(*plan.page_conditions)
        .order_by(*plan.orderby.clauses)
        .limit(plan.top + 1)
        .offset(plan.skip)
        .subquery("page")
    )
    columns: list[Any] = [page.c[column.name] for column in _COLUMNS]
    source: Any = page
    order_by: list[Any] = [page.c.page_position]
    if plan.want_count:
        columns.append(select(func.count()).select_from(Order).where(*plan.conditions).scalar_subquery().label("total"))
    if plan.expand_items:
        columns += _ITEM_COLUMNS
        source = page.outerjoin(_ITEMS, _ITEMS.c.order_id == page.c.id)
        order_by.append(_ITEMS.c.position)
    return select(*columns).select_from(source).order_by(*order_by)


PLANS_KEPT = 512


@lru_cache(maxsize=PLANS_KEPT)
def _kept_plan(scope_key: tuple[bool, str | None], query: ListOrders) -> tuple[_Plan, Select[Any]]:
    """The plan and statement of a first page, kept per caller scope and query: shops ask the same
    few pages over and over, and building the statement cost as much as running it. Only valid
    queries are kept (an invalid one raises before anything is stored)."""
    is_staff, customer_id = scope_key
    principal = Principal(key_id="", role="admin" if is_staff else "customer", customer_id=customer_id)
    plan = _plan(principal, query, secret_key="")
    return plan, _page_statement(plan)


def _plan_and_statement(principal: Principal, query: ListOrders, secret_key: str) -> tuple[_Plan, Select[Any]]:
    # Not kept: a later page (its token holds the last row's values) and a filter with now()
    # (its value is the time of each request).
    if query.skiptoken is not None or (query.filter is not None and "now" in query.filter.lower()):
        plan = _plan(principal, query, secret_key)
        return plan, _page_statement(plan)
    return _kept_plan((principal.is_staff, None if principal.is_staff else principal.customer_id), query)


def list_orders(db: Database, principal: Principal, query: ListOrders, *, secret_key: str) -> OrderPage:
    """One page of the orders ``principal`` may see, filtered and ordered as asked.

    One round trip on the autocommit read engine (the page, its items and the count together);
    a second one only for the count of an empty page."""
    plan, statement = _plan_and_statement(principal, query, secret_key)
    top = plan.top
    fetched: list[OrderRow] = []
    count: int | None = None
    with db.read_engine.connect() as conn:
        if top > 0:
            by_id: dict[str, OrderRow] = {}
            for row in conn.execute(statement).all():
                entry = by_id.get(row.id)
                if entry is None:
                    entry = OrderRow(*row[:_WIDTH], items=[] if plan.expand_items else None)  # by position: fast
                    by_id[row.id] = entry
                    fetched.append(entry)
                    if plan.want_count:
                        count = int(row.total)
                if plan.expand_items and row.item_id is not None:
                    assert entry.items is not None
                    entry.items.append(
                        ItemView(row.item_id, row.item_offer_id, row.item_quantity, row.item_price, row.item_status)
                    )
        if plan.want_count and count is None:
            count = int(conn.execute(select(func.count()).select_from(Order).where(*plan.conditions)).scalar_one())
    rows = fetched[:top]

    next_token = None
    if len(fetched) > top and rows:
        last = rows[-1]
        values = [getattr(last, key.field.attribute) for key in plan.orderby.keys]
        next_token = paging.encode_token(secret_key, plan.orderby, values, plan.digest)
    return OrderPage(rows=rows, count=count, next_token=next_token, fields=plan.fields, expand_items=plan.expand_items)


def count_orders(db: Database, principal: Principal, query: ListOrders, *, secret_key: str) -> int:
    """How many orders ``principal`` may see match ``$filter`` (``GET /api/orders/$count``).

    The other options are checked as the list checks them (a malformed ``$top`` is still a 400)
    and do not change the count, as OData has it."""
    conditions = _plan(principal, query, secret_key).conditions
    with db.reader() as session:
        return int(session.scalar(select(func.count()).select_from(Order).where(*conditions)) or 0)
