"""The settings of this worker or beat process, as the Celery app was built with them.

The per-process connections (database, gateways, sender) live in ``tasks.context``, built lazily
per process id so that a prefork child never reuses its parent's pooled connections.
"""

from __future__ import annotations

from config.settings import Settings

_settings: Settings | None = None


def configure(settings: Settings) -> None:
    """Remember the settings; nothing connects here."""
    global _settings
    _settings = settings


def settings() -> Settings:
    if _settings is None:
        configure(Settings.from_env())
    assert _settings is not None
    return _settings
