"""Readiness of the database (the broker's is checked by the caller that owns the connection)."""

from __future__ import annotations

from sqlalchemy import text

from models import Database


def database_ready(db: Database) -> bool:
    try:
        with db.reader() as session:
            session.execute(text("SELECT 1"))
        return True
    except Exception:  # any failure means "not ready"; the reason is logged by the caller
        return False
