"""Fixtures for the reliability scenarios: real gunicorn, real workers, real beat."""

from __future__ import annotations

import requests

from tests.support.polling import wait_for


def wait_ready(base: str, timeout: float = 60) -> None:
    def ready() -> bool:
        try:
            return requests.get(base + "/readyz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    wait_for(ready, timeout=timeout, what=f"{base} to be ready")
