"""Real processes for tests: Celery workers and the service's own runner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from config.settings import PROJECT_ROOT, Settings


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that makes a child process read the same settings."""
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": settings.database_url,
            "REDIS_URL": settings.redis_url,
            "RELAY_INTERVAL_SECONDS": str(settings.relay_interval_seconds),
            "RELAY_GRACE_SECONDS": str(settings.relay_grace_seconds),
            "PAYMENT_WINDOW_SECONDS": str(settings.payment_window_seconds),
            "BEAT_LOCK_TIMEOUT_SECONDS": str(settings.beat_lock_timeout_seconds),
            "PUBLIC_BASE_URL": settings.public_base_url,
            "GATEWAYS_JSON": json.dumps(settings.gateways),
            "SECRET_KEY": settings.secret_key,
            "BROKER_VISIBILITY_TIMEOUT_SECONDS": str(settings.broker_visibility_timeout_seconds),
            "SANDBOX_PAUSE_SECONDS": str(settings.sandbox_pause_seconds),
            "WEBHOOK_TOLERANCE_SECONDS": str(settings.webhook_tolerance_seconds),
            "RECONCILE_AFTER_SECONDS": str(settings.reconcile_after_seconds),
            "RECONCILE_INTERVAL_SECONDS": str(settings.reconcile_interval_seconds),
            "EXPIRE_ORDERS_INTERVAL_SECONDS": str(settings.expire_orders_interval_seconds),
            "EXPIRE_ORDERS_BATCH": str(settings.expire_orders_batch),
            "SETTLEMENT_INTERVAL_SECONDS": str(settings.settlement_interval_seconds),
            "HOUSEKEEPING_INTERVAL_SECONDS": str(settings.housekeeping_interval_seconds),
            "EXPORT_DIR": str(settings.export_dir),
            "EXPORT_TTL_SECONDS": str(settings.export_ttl_seconds),
            "EXPORT_XLSX_SHEET_ROWS": str(settings.export_xlsx_sheet_rows),
            "EXPORT_PROGRESS_ROWS": str(settings.export_progress_rows),
            "JOB_LEASE_SECONDS": str(settings.job_lease_seconds),
            "RECOVERY_INTERVAL_SECONDS": str(settings.recovery_interval_seconds),
            "WORKER_SOFT_SHUTDOWN_SECONDS": str(settings.worker_soft_shutdown_seconds),
            "QUEUE_PREFIX": settings.queue_prefix,
            "BROKER_URL": settings.broker_url or "",
            "EXPORT_STORAGE_URL": settings.export_storage_url,
            "EXPORT_S3_ENDPOINT_URL": settings.export_s3_endpoint_url or "",
            "EXPORT_S3_REGION": settings.export_s3_region or "",
            "EXPORT_S3_ACCESS_KEY_ID": settings.export_s3_access_key_id or "",
            "EXPORT_S3_SECRET_ACCESS_KEY": settings.export_s3_secret_access_key or "",
            "WEBHOOK_ALLOW_PRIVATE_URLS": "1" if settings.webhook_allow_private_urls else "0",
            "WEBHOOK_TIMEOUT_SECONDS": str(settings.webhook_timeout_seconds),
            "WEBHOOK_BACKOFF_BASE_SECONDS": str(settings.webhook_backoff_base_seconds),
            "WEBHOOK_BACKOFF_MAX_SECONDS": str(settings.webhook_backoff_max_seconds),
            "WEBHOOK_RETRY_WINDOW_SECONDS": str(settings.webhook_retry_window_seconds),
            "WEBHOOK_SWEEP_INTERVAL_SECONDS": str(settings.webhook_sweep_interval_seconds),
            "PYTHONUNBUFFERED": "1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    env.update(extra)
    return env


def start_worker(
    settings: Settings,
    log_path: Path,
    *,
    queues: str = "payments,orders,exports,maintenance",
    concurrency: int = 2,
    name: str = "test",
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """A real ``python -m workers worker`` process consuming ``queues``."""
    log = log_path.open("ab")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workers",
            "worker",
            "--queues",
            queues,
            "--concurrency",
            str(concurrency),
            "--pool",
            "prefork",
            "--loglevel",
            "INFO",
            "--hostname",
            f"{name}-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=PROJECT_ROOT,
        env=settings_env(settings, **(env or {})),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_process(process: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
    """Stop a child (and its process group) and return its exit code."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout)
    return process.returncode


def start_beat(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    """A real ``python -m workers beat`` process (RedBeat scheduler, lock in Redis)."""
    log = log_path.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "workers", "beat", "--loglevel", "DEBUG"],
        cwd=PROJECT_ROOT,
        env=settings_env(settings),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def start_web(
    settings: Settings, port: int, log_path: Path, *, workers: int = 2, threads: int = 8, **extra_env: str
) -> subprocess.Popen[bytes]:
    """The API under gunicorn, as the Procfile's ``web`` line runs it."""
    log = log_path.open("ab")
    env = settings_env(
        settings, PORT=str(port), HOST="127.0.0.1", WEB_CONCURRENCY=str(workers), WEB_THREADS=str(threads), **extra_env
    )
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "python:config.gunicorn", "api.app:get_app()"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def start_ready_worker(
    settings: Settings,
    log_path: Path,
    *,
    queues: str,
    name: str,
    concurrency: int = 1,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> subprocess.Popen[bytes]:
    """:func:`start_worker`, returned once that very worker answers a control ping."""
    from tests.support.polling import wait_for
    from workers.app import create_celery_app

    process = start_worker(settings, log_path, queues=queues, concurrency=concurrency, name=name, env=env)
    control = create_celery_app(settings).control
    prefix = f"{name}-{os.getpid()}@"

    def answered() -> bool:
        assert process.poll() is None, log_path.read_text()[-3000:]
        replies = control.ping(timeout=0.5) or []
        return any(host.startswith(prefix) for reply in replies for host in reply)

    wait_for(answered, timeout=timeout, what=f"worker {name} to answer a ping")
    return process
