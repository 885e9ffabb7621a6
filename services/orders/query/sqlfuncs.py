"""Small SQL constructs that differ between SQLite and PostgreSQL, compiled per dialect.

The query compilers build dialect-neutral expressions from these; the dialect is only known when
the statement is compiled, which is when ``@compiles`` picks the right spelling.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, cast, extract, func, literal_column
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


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


@compiles(_utc_part)
def _utc_part_default(element: _utc_part, compiler: Any, **kw: Any) -> str:
    # timestamptz -> the UTC wall clock, independent of the session's TimeZone setting.
    utc_wall_clock = func.timezone(literal_column("'UTC'"), _only_clause(element))
    return compiler.process(cast(extract(element.part, utc_wall_clock), Integer), **kw)


@compiles(_utc_part, "sqlite")
def _utc_part_sqlite(element: _utc_part, compiler: Any, **kw: Any) -> str:
    # Timestamps are stored as UTC text; SQLAlchemy renders this as CAST(STRFTIME(...) AS INTEGER).
    return compiler.process(extract(element.part, _only_clause(element)), **kw)


UTC_PARTS: dict[str, type[_utc_part]] = {"year": utc_year, "month": utc_month, "day": utc_day}
