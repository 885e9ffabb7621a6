"""Pooled connections: no round trip per checkout, but a connection that sat idle is pinged
before use, and one the server dropped meanwhile is replaced, not handed to a request."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from models import Database
from models import db as db_module


def test_an_idle_connection_is_pinged_then_used_in_every_mode(settings, monkeypatch):
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)  # every checkout counts as idle
    db = Database.connect(settings)
    try:
        for _ in range(3):  # the ping leaves no transaction behind: each mode works after it
            with db.autocommit() as conn:
                assert conn.execute(text("SELECT 1")).scalar() == 1
            with db.connection() as conn:
                assert conn.execute(text("SELECT 2")).scalar() == 2
            with db.reader() as session:
                assert session.execute(text("SELECT 3")).scalar() == 3
    finally:
        db.dispose()


def test_a_connection_the_server_dropped_while_idle_is_replaced(settings, monkeypatch):
    if settings.is_sqlite:
        pytest.skip("a SQLite file has no server to drop the connection")
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)
    db = Database.connect(settings)
    try:
        with db.reader() as session:
            victim = session.execute(text("SELECT pg_backend_pid()")).scalar()
        with db.autocommit() as conn:  # another pooled connection kills the idle one
            killer = conn.execute(text("SELECT pg_backend_pid()")).scalar()
            if killer == victim:
                pytest.skip("the pool handed out the same connection")
        with Database.connect(settings).write_engine.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": victim})
        for _ in range(2):
            with db.reader() as session:
                assert session.execute(text("SELECT pg_backend_pid()")).scalar() != victim
    finally:
        db.dispose()
