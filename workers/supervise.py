"""Keep a child process running: restart it with backoff when it dies, stop it on SIGTERM/SIGINT.

Celery beat exits when Redis is unreachable (at start-up or while renewing its RedBeat lock);
under honcho one exiting process stops them all, so beat runs under this small supervisor and
comes back by itself once Redis does.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from collections.abc import Sequence

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0


def supervise(command: Sequence[str], env: dict[str, str]) -> int:
    stopping = threading.Event()
    current: list[subprocess.Popen[bytes]] = []

    def _stop(signum: int, _frame: object) -> None:
        stopping.set()
        for child in current:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    backoff = 1.0
    while True:
        child = subprocess.Popen(list(command), env=env)
        current[:] = [child]
        code = child.wait()
        if stopping.is_set() or code == 0:
            return code
        log.warning("supervised process exited (code %s); restarting in %.0fs", code, backoff)
        if stopping.wait(backoff):
            return code
        backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)


def supervised_child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["ORDERS_SUPERVISED"] = "1"
    return env


def is_supervised_child() -> bool:
    return os.environ.get("ORDERS_SUPERVISED") == "1"
