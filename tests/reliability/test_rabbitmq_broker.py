"""Celery messages on RabbitMQ (``BROKER_URL=amqp://…``), beat and the fleet's keys on Redis.

Real processes: gunicorn (the Procfile's web line), a worker (``payments,maintenance``) and beat,
with ``BROKER_URL`` on the RabbitMQ of this machine and ``REDIS_URL`` on a Redis of the test's
own. Queue and exchange names carry a prefix unique to this run (``QUEUE_PREFIX``), so runs that
share the broker never take each other's messages; they are deleted at the end.

The web used to fail to boot with an amqp URL (it built a Redis client from it); here it boots,
``/readyz`` checks RabbitMQ and Redis, an order's checkout task travels over RabbitMQ and
succeeds, and ``/metrics`` reads the queue depths from RabbitMQ.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys

import pytest
import requests
from kombu import Connection

from config.settings import PROJECT_ROOT
from tests.conftest import auth
from tests.integration.helpers import brief_order
from tests.reliability.conftest import wait_ready
from tests.support.polling import wait_for
from tests.support.processes import settings_env, start_beat, start_ready_worker, start_web, stop_process
from workers.embedded_redis import EmbeddedRedis, free_port
from workers.queues import ALL_QUEUES

AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def _rabbitmq_listening() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=1):
            return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _rabbitmq_listening(), reason="no RabbitMQ on 127.0.0.1:5672")


def _delete_run_objects(prefix: str) -> None:
    """The run's queues and exchanges (auto-declared by the worker and the senders)."""
    with Connection(AMQP_URL, connect_timeout=2) as conn:
        for queue in ALL_QUEUES:
            channel = conn.channel()
            try:
                channel.queue_delete(prefix + queue)
            except Exception:  # never declared (a 404 closes the channel): nothing to delete
                pass
        for exchange in (*ALL_QUEUES, f"{prefix}celery.pidbox", f"reply.{prefix}celery.pidbox", f"{prefix}celeryev"):
            channel = conn.channel()
            try:
                channel.exchange_delete(prefix + exchange if exchange in ALL_QUEUES else exchange)
            except Exception:  # as above
                pass


def test_an_order_checkout_runs_over_rabbitmq(settings, deps, admin, make_offer, tmp_path) -> None:
    prefix = f"t{os.getpid()}{secrets.token_hex(3)}-"
    redis = EmbeddedRedis(tmp_path / "redis")
    own = settings.with_(redis_url=redis.start(), broker_url=AMQP_URL, queue_prefix=prefix)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    processes = []
    try:
        worker_metrics = free_port()
        processes.append(
            start_ready_worker(
                own,
                tmp_path / "worker.log",
                queues="payments,maintenance",
                name="rabbit",
                env={"WORKER_METRICS_PORT": str(worker_metrics), "PROMETHEUS_MULTIPROC_DIR": ""},
            )
        )
        processes.append(start_beat(own, tmp_path / "beat.log"))
        processes.append(start_web(own, port, tmp_path / "web.log", workers=1, WEB_ACCESS_LOG="on"))
        wait_ready(base)
        ready = requests.get(f"{base}/readyz", timeout=5).json()
        assert ready == {"status": "ready", "checks": {"database": True, "broker": True, "redis": True}}, ready

        headers = auth(admin)
        placed = requests.post(
            f"{base}/api/orders", json=brief_order(make_offer(), "cust_rabbit"), headers=headers, timeout=10
        )
        assert placed.status_code == 201, placed.text

        def finished() -> dict | None:
            task = requests.get(f"{base}/api/tasks/{placed.json()['taskId']}", headers=headers, timeout=5).json()
            return task if task["state"] in ("succeeded", "failed") else None

        task = wait_for(finished, timeout=40, interval=0.2, what="the checkout task over RabbitMQ")
        assert task["state"] == "succeeded", task
        assert task["type"] == "checkout"

        def scraped() -> str | None:
            text = requests.get(f"{base}/metrics", timeout=5).text
            ticked = any(
                line.startswith("orders_beat_last_tick_timestamp_seconds ") and float(line.split()[1]) > 0
                for line in text.splitlines()
            )
            return text if ticked else None

        metrics = wait_for(scraped, timeout=30, interval=0.5, what="beat to tick (its schedule is in Redis)")
        assert 'orders_queue_depth{queue="payments"}' in metrics  # read from RabbitMQ
        assert 'orders_workers{queue="payments"} 1.0' in metrics

        # A worker-only host's metrics: the worker serves its pool's task metrics itself.
        def worker_scraped() -> str | None:
            text = requests.get(f"http://127.0.0.1:{worker_metrics}/metrics", timeout=5).text
            return text if 'orders_tasks_total{outcome="succeeded",task="checkout"}' in text else None

        from_worker = wait_for(worker_scraped, timeout=20, what="the worker's own metrics")
        assert 'orders_queue_wait_seconds_bucket{le="+Inf",queue="payments"}' in from_worker

        # The liveness probes of docs/deploy.md's Kubernetes manifests, against these processes.
        def probe(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "workers", "probe", *args],
                cwd=PROJECT_ROOT,
                env=settings_env(own),
                capture_output=True,
                text=True,
                timeout=30,
            )

        ours = f"rabbit-{os.getpid()}@{socket.gethostname()}"
        assert probe("worker", "--hostname", ours).returncode == 0
        assert probe("beat").returncode == 0
        # Celery's own command line finds the app (workers/celery.py) and reaches the worker.
        pinged = subprocess.run(
            [sys.executable, "-m", "celery", "-A", "workers", "inspect", "ping", "-d", ours, "--timeout", "10"],
            cwd=PROJECT_ROOT,
            env=settings_env(own),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert pinged.returncode == 0 and "pong" in pinged.stdout, (pinged.stdout, pinged.stderr[-2000:])
        missing = probe("worker", "--hostname", "nobody@nowhere")
        assert missing.returncode == 1
        assert missing.stderr.strip() == "probe worker: no worker nobody@nowhere announced itself within 30 s"
    finally:
        for process in processes:
            stop_process(process)
        redis.stop()
        _delete_run_objects(prefix)

    # Every line each process wrote is a JSON object: gunicorn's own (error and access log),
    # Celery's start-up banner and shutdown notes, beat's, the service's.
    for name in ("web.log", "worker.log", "beat.log"):
        lines = (tmp_path / name).read_text().splitlines()
        assert lines, name
        not_json = [line for line in lines if not _is_json_object(line)]
        assert not not_json, (name, not_json[:5])
    web_lines = [json.loads(line) for line in (tmp_path / "web.log").read_text().splitlines()]
    assert any(line.get("logger") == "gunicorn.error" for line in web_lines)
    assert any(line.get("logger") == "gunicorn.access" and line.get("status") == 201 for line in web_lines)
    worker_lines = [json.loads(line) for line in (tmp_path / "worker.log").read_text().splitlines()]
    assert any(line["event"] == "worker starting" and line["broker"].startswith("amqp://") for line in worker_lines)


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
