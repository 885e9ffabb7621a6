"""Engines and session factories, built from settings (never at import time).

Two engines per process: a *write* engine whose transactions take the SQLite write lock up front
(``BEGIN IMMEDIATE``: a deferred read that later writes can deadlock under concurrency), and a
*read* engine in autocommit mode, which spares reads a BEGIN/ROLLBACK round trip.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
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
            conn.exec_driver_sql("BEGIN IMMEDIATE")


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
        "pool_pre_ping": True,
        "pool_timeout": 5,
        "connect_args": {"connect_timeout": 3},
    }
    if read_only:
        kwargs["isolation_level"] = "AUTOCOMMIT"
    return create_engine(url, **kwargs)


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
