"""Start-up of every process (web, worker, beat, operator commands): settings or one line each.

A bad setting must never surface as a traceback from deep inside a library: each problem is
printed as ``configuration error: <problem>`` on stderr and the process exits with status 2,
which systemd, Kubernetes and honcho all show as a failed start.
"""

from __future__ import annotations

import sys
from typing import NoReturn

from config.secret_key import ConfigError
from config.settings import Settings

EXIT_CONFIG = 2


def refuse(error: ConfigError) -> NoReturn:
    for line in error.lines():
        print(line, file=sys.stderr, flush=True)
    raise SystemExit(EXIT_CONFIG)


def settings_or_exit(env: dict[str, str] | None = None) -> Settings:
    """``Settings.from_env(env)``, or exit 2 after printing each bad setting on its own line."""
    try:
        return Settings.from_env(env)
    except ConfigError as exc:
        refuse(exc)
