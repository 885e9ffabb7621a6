"""A fresh database per test session: a SQLite file, or a uniquely named PostgreSQL database."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, make_url, text


@contextmanager
def fresh_database(base_url: str | None, directory: Path, *, prefix: str = "orders_test") -> Iterator[str]:
    """Yield a URL to an empty database; PostgreSQL ones (``{prefix}_<hex>``) are dropped afterwards."""
    if not base_url or base_url.startswith("sqlite"):
        yield f"sqlite:///{directory / f'test-{secrets.token_hex(4)}.db'}"
        return
    url = make_url(base_url)
    name = f"{prefix}_{secrets.token_hex(6)}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
