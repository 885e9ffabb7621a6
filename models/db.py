"""Engines and session factories, built from settings (never at import time).

Two engines per process: a *write* engine whose transactions take the SQLite write lock up front
(``BEGIN IMMEDIATE``: a deferred read that later writes can deadlock under concurrency), and a
*read* engine in autocommit mode, which spares reads a BEGIN/ROLLBACK round trip.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from models import sqlite_numeric


def _sqlite_tuning(engine: Engine, settings: Settings, *, immediate: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let us emit BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(settings.sqlite_busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        sqlite_numeric.register(dbapi_conn)

    if immediate:

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
                return  # each statement is its own transaction (Database.autocommit)
            conn.exec_driver_sql("BEGIN IMMEDIATE")


# A pooled connection unused for this long is asked ``SELECT 1`` before it is handed out (servers,
# proxies and firewalls drop idle connections); one in steady use is not, which spares every
# checkout under load the round trip that ``pool_pre_ping`` costs. A connection that fails while
# in use is invalidated by SQLAlchemy with the rest of the pool, so the next request reconnects.
PING_AFTER_IDLE_SECONDS = 10.0
RECYCLE_SECONDS = 1800


def _ping_idle_connections(engine: Engine, idle_seconds: float) -> None:
    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < idle_seconds:
            return
        try:
            cursor = dbapi_conn.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
            dbapi_conn.rollback()  # the ping opened a transaction on a non-autocommit connection
        except Exception as exc:  # the pool discards this connection and checks out a new one
            raise DisconnectionError(f"idle connection is gone: {exc!r}") from exc


def make_engine(settings: Settings, *, read_only: bool = False) -> Engine:
    """An engine for ``settings.database_url``; ``read_only`` gives the autocommit read engine."""
    url = settings.database_url
    if settings.is_sqlite:
        engine = create_engine(
            url,
            pool_size=settings.db_pool_size,
            max_overflow=20,
            connect_args={"timeout": settings.sqlite_busy_timeout_ms / 1000, "check_same_thread": False},
        )
        _sqlite_tuning(engine, settings, immediate=not read_only)
        return engine
    kwargs: dict[str, Any] = {
        "pool_size": settings.db_pool_size,
        "max_overflow": 10,
        "pool_recycle": RECYCLE_SECONDS,
        "pool_timeout": 5,
        "connect_args": {"connect_timeout": 3},
    }
    if read_only:
        kwargs["isolation_level"] = "AUTOCOMMIT"
    engine = create_engine(url, **kwargs)
    _ping_idle_connections(engine, PING_AFTER_IDLE_SECONDS)
    return engine


@dataclass
class Database:
    """The pair of engines and their session factories that one process uses."""

    write_engine: Engine
    read_engine: Engine
    write_sessions: sessionmaker[Session]
    read_sessions: sessionmaker[Session]

    @classmethod
    def connect(cls, settings: Settings) -> Database:
        write_engine = make_engine(settings)
        read_engine = make_engine(settings, read_only=True)
        return cls(
            write_engine=write_engine,
            read_engine=read_engine,
            write_sessions=sessionmaker(write_engine, expire_on_commit=False),
            read_sessions=sessionmaker(read_engine, expire_on_commit=False),
        )

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: commit on success, roll back on any exception."""
        with self.write_sessions() as session, session.begin():
            yield session

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """One transaction on a bare connection, for use cases written in Core (no ORM unit of
        work): commit on success, roll back on any exception."""
        with self.write_engine.begin() as conn:
            yield conn

    @contextmanager
    def autocommit(self) -> Iterator[Connection]:
        """A write connection on which every statement commits by itself: for work that is one
        statement (claiming a job or an idempotency key, finishing a job), which a transaction
        would wrap in two more round trips (BEGIN, COMMIT)."""
        with self.write_engine.connect() as conn:
            yield conn.execution_options(isolation_level="AUTOCOMMIT")

    @contextmanager
    def reader(self) -> Iterator[Session]:
        """A session for reads only (autocommit; nothing it does is committed)."""
        with self.read_sessions() as session:
            yield session

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A read-only connection that sees one consistent snapshot until it is closed.

        For long streaming reads (exports): a count and the rows it counts agree. PostgreSQL gets
        a ``REPEATABLE READ READ ONLY`` transaction, which server-side cursors (``stream_results``)
        need anyway; SQLite gets a deferred ``BEGIN`` on the read engine, a WAL read snapshot that
        never blocks writers.
        """
        with self.read_engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN")
                try:
                    yield conn
                finally:
                    conn.exec_driver_sql("ROLLBACK")
                return
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        self.write_engine.dispose()
        self.read_engine.dispose()
