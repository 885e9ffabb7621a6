"""Whether this web process is draining: it got SIGTERM and keeps serving for ``WEB_DRAIN_SECONDS``
while ``/readyz`` answers 503, so a load balancer (or Kubernetes' endpoints controller) takes it
out of rotation before it stops accepting connections. Set by the gunicorn worker
(``api/serving/worker.py``), read by the readiness resource; one flag per process."""

from __future__ import annotations

import threading

_draining = threading.Event()


def start_draining() -> None:
    _draining.set()


def is_draining() -> bool:
    return _draining.is_set()
