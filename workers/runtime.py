"""Per-process resources of a worker: settings and the database, connected lazily per PID.

A prefork child must never reuse its parent's pooled connections, so the database handle is
keyed by the process id and rebuilt in each child on first use (and on ``worker_process_init``).
"""

from __future__ import annotations

import os

from config.settings import Settings
from models import Database

_settings: Settings | None = None
_database: Database | None = None
_database_pid: int | None = None


def configure(settings: Settings) -> None:
    """Remember the settings; nothing connects here."""
    global _settings
    _settings = settings


def settings() -> Settings:
    if _settings is None:
        configure(Settings.from_env())
    assert _settings is not None
    return _settings


def database() -> Database:
    """This process's database handle, created on first use after a fork."""
    global _database, _database_pid
    if _database is None or _database_pid != os.getpid():
        _database = Database.connect(settings())
        _database_pid = os.getpid()
    return _database


def reset_after_fork() -> None:
    """Drop any handle inherited from the parent without closing the parent's connections."""
    global _database, _database_pid
    _database, _database_pid = None, None
