"""Small SQL constructs that differ between SQLite and PostgreSQL, compiled per dialect.

The query compilers build dialect-neutral expressions from these; the dialect is only known when
the statement is compiled, which is when ``@compiles`` picks the right spelling.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, Date, Integer, Numeric, String, cast, extract, func, literal_column
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator, TypeEngine


class strpos(FunctionElement[int]):  # noqa: N801 (SQL function naming)
    """1-based position of ``needle`` in ``haystack`` (0 when absent); case-sensitive on both databases.

    PostgreSQL spells it ``strpos(haystack, needle)``, SQLite ``instr(haystack, needle)``. Used
    instead of ``LIKE`` because SQLite's ``LIKE`` ignores ASCII case while PostgreSQL's does not,
    and because no wildcard escaping is then needed.
    """

    type = Integer()
    name = "strpos"
    inherit_cache = True


@compiles(strpos)
def _strpos_default(element: strpos, compiler: Any, **kw: Any) -> str:
    return f"strpos({compiler.process(element.clauses, **kw)})"


@compiles(strpos, "sqlite")
def _strpos_sqlite(element: strpos, compiler: Any, **kw: Any) -> str:
    return f"instr({compiler.process(element.clauses, **kw)})"


class _utc_part(FunctionElement[int]):  # noqa: N801
    """A calendar part of a UTC timestamp column, as an integer (the subclass names the part)."""

    type = Integer()
    inherit_cache = True
    part = "year"


class utc_year(_utc_part):  # noqa: N801
    name = "utc_year"
    part = "year"
    inherit_cache = True


class utc_month(_utc_part):  # noqa: N801
    name = "utc_month"
    part = "month"
    inherit_cache = True


class utc_day(_utc_part):  # noqa: N801
    name = "utc_day"
    part = "day"
    inherit_cache = True


def _only_clause(element: FunctionElement[Any]) -> Any:
    [clause] = list(element.clauses)
    return clause


class utc_hour(_utc_part):  # noqa: N801
    name = "utc_hour"
    part = "hour"
    inherit_cache = True


class utc_minute(_utc_part):  # noqa: N801
    name = "utc_minute"
    part = "minute"
    inherit_cache = True


class utc_second(_utc_part):  # noqa: N801
    """Whole seconds (PostgreSQL's ``extract(second ...)`` carries the fraction; it is dropped)."""

    name = "utc_second"
    part = "second"
    inherit_cache = True


def _utc_wall_clock(element: FunctionElement[Any]) -> Any:
    # timestamptz -> the UTC wall clock, independent of the session's TimeZone setting.
    return func.timezone(literal_column("'UTC'"), _only_clause(element))


@compiles(_utc_part)
def _utc_part_default(element: _utc_part, compiler: Any, **kw: Any) -> str:
    part = extract(element.part, _utc_wall_clock(element))
    if element.part == "second":
        part = func.floor(part)  # a cast to integer would round 59.7 up to 60
    return compiler.process(cast(part, Integer), **kw)


@compiles(_utc_part, "sqlite")
def _utc_part_sqlite(element: _utc_part, compiler: Any, **kw: Any) -> str:
    # Timestamps are stored as UTC text; SQLAlchemy renders this as CAST(STRFTIME(...) AS INTEGER).
    return compiler.process(extract(element.part, _only_clause(element)), **kw)


UTC_PARTS: dict[str, type[_utc_part]] = {
    "year": utc_year,
    "month": utc_month,
    "day": utc_day,
    "hour": utc_hour,
    "minute": utc_minute,
    "second": utc_second,
}


class utc_date(FunctionElement[Any]):  # noqa: N801
    """The UTC calendar date of a timestamp column (OData ``date()``), comparable with a date literal."""

    type = Date()
    name = "utc_date"
    inherit_cache = True


@compiles(utc_date)
def _utc_date_default(element: utc_date, compiler: Any, **kw: Any) -> str:
    return compiler.process(cast(_utc_wall_clock(element), Date), **kw)


@compiles(utc_date, "sqlite")
def _utc_date_sqlite(element: utc_date, compiler: Any, **kw: Any) -> str:
    # Stored as UTC text 'YYYY-MM-DD HH:MM:SS.ffffff'; date() gives 'YYYY-MM-DD', as a Date binds.
    return f"date({compiler.process(_only_clause(element), **kw)})"


# -- exact arithmetic -------------------------------------------------------------------------------
#
# PostgreSQL computes in ``numeric`` (every operand cast, so no integer column can overflow and
# a division by zero is NULL through NULLIF, not an error); SQLite, whose money columns are REAL,
# calls the Decimal functions that ``models.sqlite_numeric`` registers on every connection.
# One class per operation, so that SQLAlchemy's statement cache tells them apart.


class ExactNumber(TypeDecorator[Decimal]):
    """A numeric literal bound for the exact constructs: ``numeric`` on PostgreSQL, decimal text
    on SQLite (where a REAL would lose digits before the Decimal function sees them)."""

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> TypeEngine[Any]:
        return dialect.type_descriptor(String() if dialect.name == "sqlite" else Numeric())

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        return str(value) if dialect.name == "sqlite" else Decimal(value)


class _exact(FunctionElement[Decimal]):  # noqa: N801
    type = Numeric()
    inherit_cache = True
    op = ""


def _exact_class(op: str, base: type[Any]) -> type[Any]:
    return type(f"exact_{op}", (base,), {"op": op, "name": f"exact_{op}", "inherit_cache": True})


EXACT_ARITHMETIC: dict[str, type[_exact]] = {
    op: _exact_class(op, _exact)
    for op in ("add", "sub", "mul", "div", "idiv", "mod", "neg", "round", "floor", "ceiling")
}

_POSTGRESQL_ARITHMETIC = {
    "add": "({0} + {1})",
    "sub": "({0} - {1})",
    "mul": "({0} * {1})",
    "div": "({0} / NULLIF({1}, 0))",
    "idiv": "trunc({0} / NULLIF({1}, 0))",
    "mod": "mod({0}, NULLIF({1}, 0))",
    "neg": "(- {0})",
    "round": "round({0})",
    "floor": "floor({0})",
    "ceiling": "ceil({0})",
}


def _numeric_args(element: FunctionElement[Any], compiler: Any, **kw: Any) -> list[str]:
    return [compiler.process(cast(arg, Numeric()), **kw) for arg in element.clauses]


@compiles(_exact)
def _exact_default(element: _exact, compiler: Any, **kw: Any) -> str:
    return _POSTGRESQL_ARITHMETIC[element.op].format(*_numeric_args(element, compiler, **kw))


def _sqlite_call(function: str, element: FunctionElement[Any], compiler: Any, **kw: Any) -> str:
    args = [compiler.process(arg, **kw) for arg in element.clauses] + ["NULL"]
    return f"{function}('{element.op}', {args[0]}, {args[1]})"  # type: ignore[attr-defined]


@compiles(_exact, "sqlite")
def _exact_sqlite(element: _exact, compiler: Any, **kw: Any) -> str:
    return _sqlite_call("exact_arith", element, compiler, **kw)


class _exact_comparison(FunctionElement[bool]):  # noqa: N801
    type = Boolean()
    inherit_cache = True
    op = ""


EXACT_COMPARISONS: dict[str, type[_exact_comparison]] = {
    op: _exact_class(op, _exact_comparison) for op in ("eq", "ne", "gt", "ge", "lt", "le")
}
_SQL_OPERATORS = {"eq": "=", "ne": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}


@compiles(_exact_comparison)
def _exact_comparison_default(element: _exact_comparison, compiler: Any, **kw: Any) -> str:
    left, right = _numeric_args(element, compiler, **kw)
    return f"({left} {_SQL_OPERATORS[element.op]} {right})"


@compiles(_exact_comparison, "sqlite")
def _exact_comparison_sqlite(element: _exact_comparison, compiler: Any, **kw: Any) -> str:
    return _sqlite_call("exact_cmp", element, compiler, **kw)
