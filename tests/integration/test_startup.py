"""Start-up of every process: each bad setting is one line, the exit status 2, never a traceback;
and what start-up configures (broker, queues, beat's Redis, log lines) is what operators expect."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.secret_key import ConfigError
from config.settings import PROJECT_ROOT, Settings
from tasks.dispatch import TaskSender
from workers.app import create_celery_app, redis_url_and_options

BAD = {
    "PAYMENT_WINDOW_SECONDS": "half an hour",
    "LOG_LEVEL": "chatty",
    "REDIS_URL": "http://:pw@cache:6379",
    "JOB_LEASE_SECONDS": "0",
}
EXPECTED = [
    "configuration error: REDIS_URL is not a URL with one of the schemes redis://, rediss://, unix:// "
    "(its value is not shown: it may hold a password)",
    "configuration error: PAYMENT_WINDOW_SECONDS='half an hour' is not an integer",
    "configuration error: LOG_LEVEL='chatty' is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
    "configuration error: JOB_LEASE_SECONDS='0' is not an integer >= 1",
]


def test_every_bad_setting_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({**BAD, "VAR_DIR": str(tmp_path), "GATEWAYS_JSON": "[1]"})
    assert raised.value.lines() == [
        'configuration error: GATEWAYS_JSON must be an object of gateway id -> {"adapter": ...}',
        *EXPECTED,
    ]


def test_a_password_in_a_bad_url_is_never_printed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"BROKER_URL": "kafka://user:hunter2@broker:9092", "VAR_DIR": str(tmp_path)})
    assert "hunter2" not in str(raised.value) and "BROKER_URL" in str(raised.value)


COMMANDS = {
    "web": [sys.executable, "-m", "gunicorn", "--config", "python:config.gunicorn", "api.app:get_app()"],
    "worker": [sys.executable, "-m", "workers", "worker", "--queues", "payments"],
    "beat": [sys.executable, "-m", "workers", "beat"],
    "celery CLI": [sys.executable, "-m", "celery", "-A", "workers", "inspect", "ping"],
    "manage.py": [sys.executable, "manage.py", "migrate"],
}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_process_refuses_bad_settings_with_one_line_each(name: str, tmp_path: Path) -> None:
    env = {**os.environ, **BAD, "VAR_DIR": str(tmp_path), "WEB_THREADS": "lots"}
    env.pop("SECRET_KEY", None)
    result = subprocess.run(COMMANDS[name], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    expected = EXPECTED + (["configuration error: WEB_THREADS='lots' is not an integer"] if name == "web" else [])
    assert result.stderr.strip().splitlines() == expected, result.stderr


def test_the_broker_defaults_to_redis_and_may_be_rabbitmq() -> None:
    redis_only = Settings(redis_url="redis://127.0.0.1:1/0")
    assert redis_only.celery_broker_url == "redis://127.0.0.1:1/0" and redis_only.broker_is_redis
    app = create_celery_app(redis_only)
    assert app.conf.broker_transport_options["visibility_timeout"] == redis_only.broker_visibility_timeout_seconds
    rabbit = redis_only.with_(broker_url="amqp://guest:guest@127.0.0.1:5672//", queue_prefix="staging-")
    assert not rabbit.broker_is_redis
    app = create_celery_app(rabbit)
    assert app.conf.broker_url.startswith("amqp://")
    assert "visibility_timeout" not in app.conf.broker_transport_options  # a Redis-only notion
    assert app.conf.redbeat_redis_url == "redis://127.0.0.1:1/0"  # beat stays on Redis
    assert app.conf.beat_schedule["relay-queued-jobs"]["options"]["queue"] == "staging-maintenance"
    assert app.conf.task_default_queue == "staging-orders" and app.conf.control_exchange == "staging-celery"


def test_the_sender_publishes_to_the_prefixed_queue() -> None:
    sent: list[dict] = []

    class Recorder:
        def send_task(self, name: str, **options: object) -> None:
            sent.append({"name": name, **options})

    from services.jobs.kinds import PAYMENT
    from services.jobs.outbox import JobRef

    TaskSender(Recorder(), "staging-").send(JobRef.of(PAYMENT, "task_1"), request_id="req_1")  # type: ignore[arg-type]
    assert sent[0]["queue"] == "staging-payments" and sent[0]["task_id"] == "task_1"
    assert sent[0]["headers"]["request_id"] == "req_1" and isinstance(sent[0]["headers"]["sent_at"], float)


def test_beats_redis_password_is_kept_out_of_its_url_and_masked_by_inspect_conf() -> None:
    assert redis_url_and_options("redis://:s3cret@cache:6380/2") == ("redis://cache:6380/2", {"password": "s3cret"})
    assert redis_url_and_options("rediss://ops:p%40ss@cache/0?ssl_cert_reqs=none") == (
        "rediss://cache/0?ssl_cert_reqs=none",
        {"username": "ops", "password": "p@ss"},
    )
    assert redis_url_and_options("redis://cache:6379/0") == ("redis://cache:6379/0", {})
    app = create_celery_app(Settings(redis_url="redis://:s3cret@cache:6380/2"))
    for with_defaults in (False, True):  # what `celery inspect conf [--with-defaults]` sends
        shown = json.dumps(app.conf.table(with_defaults=with_defaults), default=str)
        assert "s3cret" not in shown and "redbeat_redis_options" in shown


def test_stdlib_extra_fields_reach_the_json_line(tmp_path: Path) -> None:
    """``log.warning(..., extra={...})`` (tasks/dispatch.py) used to lose its fields."""
    code = (
        "import logging; from config.settings import Settings; from config.logging import configure_logging;"
        "configure_logging(Settings());"
        "logging.getLogger('tasks.dispatch').warning('job message not sent', extra={'job_id': 'task_1', 'error': 'x'})"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=30, check=True
    )
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert (line["event"], line["job_id"], line["error"], line["level"]) == (
        "job message not sent",
        "task_1",
        "x",
        "warning",
    )
