"""``python -m workers worker|beat|probe …``: the Celery CLI with the app built from settings.

- Settings are checked before anything else: a bad one is printed as one ``configuration error:``
  line per problem and the process exits 2 (no traceback).
- ``worker``: SIGTERM is a *bounded* warm shutdown. Celery's own SIGTERM waits for running tasks
  however long they run (an export: up to an hour), longer than any stop timeout of systemd or
  Kubernetes; here SIGTERM is remapped to Celery's cold shutdown with a soft phase
  (``REMAP_SIGTERM=SIGQUIT`` + ``worker_soft_shutdown_timeout``): running tasks get
  ``WORKER_SOFT_SHUTDOWN_SECONDS`` (20 s) to finish, then they are cancelled and their unacked
  messages go back to the queue for another worker. ``WORKER_SOFT_SHUTDOWN_SECONDS=0`` keeps
  Celery's unbounded warm shutdown.
- ``beat`` runs under :mod:`workers.supervise`, so an outage of Redis restarts it instead of
  ending it.
- ``probe worker|beat``: liveness for Kubernetes exec probes (``workers/probe.py``).
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

from config.logging import configure_logging
from config.startup import settings_or_exit
from workers.supervise import is_supervised_child, supervise, supervised_child_env


def _prepare_worker_process(soft_shutdown_seconds: float, metrics_port: int) -> None:
    """Environment that must be in place before Celery (billiard) or prometheus_client is imported."""
    if soft_shutdown_seconds > 0:
        os.environ.setdefault("REMAP_SIGTERM", "SIGQUIT")
    if metrics_port and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        directory = tempfile.mkdtemp(prefix="orders-worker-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        main_pid = os.getpid()
        # Removed when the worker's main process exits (not when a pool child does).
        atexit.register(lambda: os.getpid() == main_pid and shutil.rmtree(directory, ignore_errors=True))


def main(argv: list[str]) -> int:
    settings = settings_or_exit()
    if argv[:1] == ["probe"]:
        from workers.probe import main as probe

        return probe(settings, argv[1:])
    if argv[:1] == ["worker"]:
        _prepare_worker_process(settings.worker_soft_shutdown_seconds, settings.worker_metrics_port)
    configure_logging(settings)
    if argv[:1] == ["beat"] and not is_supervised_child():
        return supervise([sys.executable, "-m", "workers", *argv], supervised_child_env())
    from workers.app import create_celery_app

    if argv[:1] in (["worker"], ["beat"]) and not any(
        arg in ("-l", "--loglevel") or arg.startswith("--loglevel=") for arg in argv
    ):
        argv = [*argv, "--loglevel", settings.log_level]  # Celery's own default (WARNING) would win
    app = create_celery_app(settings)
    return int(app.start(argv=argv) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
