"""Statements both databases speak with their own dialect's words."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from sqlalchemy import Insert, Table
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert


@lru_cache(maxsize=64)
def _insert_unless_exists(table: Table, conflict_columns: tuple[str, ...], dialect: str) -> Insert:
    dialect_insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    return dialect_insert(table).on_conflict_do_nothing(index_elements=[table.c[name] for name in conflict_columns])


def insert_unless_exists(table: Table, conflict_columns: Sequence[str], dialect: str) -> Insert:
    """``INSERT … ON CONFLICT (…) DO NOTHING``: one statement that inserts a row unless one with
    the same unique key exists, instead of a SELECT then an INSERT. Add ``.returning(…)`` to learn
    which happened: through SQLAlchemy, psycopg reports ``rowcount`` -1 for it on PostgreSQL."""
    return _insert_unless_exists(table, tuple(conflict_columns), dialect)
