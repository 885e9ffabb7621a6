"""What every workload gets (a running :class:`Stack`) and gives back (:class:`Figure` rows).

The stack is started once per ``make bench`` and shared, because starting PostgreSQL databases,
Redis, gunicorn and Celery workers costs more than most workloads take to measure. It is the
real thing: a fresh, uniquely named PostgreSQL database (dropped afterwards), an embedded Redis,
the API under gunicorn with the Procfile's settings, and one worker per Procfile queue line.

A workload module (``bench/<name>.py``) exposes ``workloads() -> list[Workload]``; see
``bench/README.md``. ``bench/run.py`` finds those modules, runs them and prints the table.
"""

from __future__ import annotations

import math
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis
import requests
from sqlalchemy import insert

from bench.http_load import LoadResult, combine, run_wrk
from config.settings import PROJECT_ROOT, Settings
from models import Database, Order, OrderItem
from models.ids import new_id
from models.migrate import upgrade
from services.access.keys import issue_key
from services.orders.offers import upsert_offer
from tests.support.databases import fresh_database
from tests.support.polling import wait_for
from tests.support.processes import settings_env, start_worker, stop_process
from workers.app import create_celery_app
from workers.embedded_redis import EmbeddedRedis, free_port
from workers.queues import ALL_QUEUES

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

# The brief's body, against an offer seeded with more stock than any run can sell.
OFFER_ID = "offer_456"
OFFER_PRICE = Decimal("99.99")
OFFER_STOCK = 1_000_000_000
ORDER_BODY = (
    '{"customerId":"cust_123","items":[{"offerId":"offer_456","quantity":1,"price":99.99}],'
    '"paymentMethod":"credit_card","paymentGatewayId":"stripe_1"}'
)

# One worker process per Procfile line (its --concurrency), beat left out: nothing measured needs it.
WORKER_LINES = (("payments", 2), ("orders", 2), ("exports", 1), ("maintenance", 1), ("webhooks", 2))


@dataclass(frozen=True)
class Options:
    """Knobs of one run; workloads read what applies to them."""

    duration: float = 10.0  # seconds of measured load per side of an HTTP workload
    rounds: int = 2  # the duration is split in this many alternating service/floor rounds
    warmup: float = 2.0  # seconds of discarded load before each HTTP run
    connections: int = 32  # concurrent HTTP clients
    round_trips: int = 200  # sequential submissions for round-trip workloads
    rows: int = 1_000_000  # orders loaded for the list and export workloads (--quick: 50,000)
    web_workers: int = 2  # gunicorn processes (the Procfile's default WEB_CONCURRENCY)
    web_threads: int = 8  # request threads per process (the Procfile's default WEB_THREADS)


@dataclass(frozen=True)
class Figure:
    """One row of the table: the same metric measured on the service and on its floor."""

    workload: str
    metric: str  # e.g. "req/s", "p50 ms"
    service: float
    floor: float
    higher_is_better: bool
    notes: dict[str, Any] = field(default_factory=dict)  # raw data kept in the JSON only

    @property
    def ratio(self) -> float:
        """``service / floor``: below 1 is slower for throughput, above 1 slower for latency."""
        if self.floor == 0 or math.isnan(self.floor) or math.isnan(self.service):
            return float("nan")
        return self.service / self.floor


@dataclass(frozen=True)
class Workload:
    """A named measurement; ``run`` returns its figures (service and floor measured in the same run)."""

    name: str
    run: Callable[[Stack], list[Figure]]
    description: str = ""


def throughput_figures(workload: str, service: Any, floor: Any) -> list[Figure]:
    """req/s, p50 and p99 rows from two :class:`bench.http_load.LoadResult` s."""
    notes = {"service": service.as_dict(), "floor": floor.as_dict()}
    return [
        Figure(workload, "req/s", service.rps, floor.rps, True, notes),
        Figure(workload, "p50 ms", service.p50_ms, floor.p50_ms, False),
        Figure(workload, "p99 ms", service.p99_ms, floor.p99_ms, False),
    ]


def compare_http(
    stack: Stack,
    workload: str,
    path: str,
    script: str,
    floor_url: str,
    *,
    other_floors: dict[str, str] | None = None,
    connections: int | None = None,
) -> list[Figure]:
    """Load ``path`` on the service and on the floor in alternating rounds (service, floor, service,
    floor, …), after one warm-up of each, so a change in the machine's load (other suites share
    it) falls on both sides instead of on whichever happened to run second. Queues are drained
    after every round, so neither side pays for the other's backlog.

    ``other_floors`` (name → URL) are measured in the same rounds; their rows are the service
    against each of them, named ``"<workload> vs <name>"``."""
    options = stack.options
    rounds = max(1, options.rounds)
    connections = connections or options.connections
    sides = {"service": stack.service_url, "floor": floor_url, **(other_floors or {})}
    runs: dict[str, list[LoadResult]] = {side: [] for side in sides}
    for base in sides.values():
        if options.warmup > 0:
            run_wrk(base + path, script=script, connections=connections, duration=options.warmup)
        stack.settle()
    for _ in range(rounds):
        for side, base in sides.items():
            result = run_wrk(base + path, script=script, connections=connections, duration=options.duration / rounds)
            runs[side].append(result)
            stack.settle()
    service = combine(runs["service"])
    figures = throughput_figures(workload, service, combine(runs["floor"]))
    figures[0].notes["rounds"] = {side: [r.as_dict() for r in results] for side, results in runs.items()}
    for name in other_floors or {}:
        figures += throughput_figures(f"{workload} vs {name}", service, combine(runs[name]))
    return figures


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: with 200 samples p99 is the 198th value)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


class Stack:
    """The system under test, entered once per run; workloads use its URLs, key and helpers."""

    def __init__(self, run_dir: Path, options: Options, database_url: str | None = None) -> None:
        self.run_dir = run_dir
        self.options = options
        self.base_database_url = database_url or os.environ.get("BENCH_DATABASE_URL") or DEFAULT_DATABASE_URL
        self._exits = ExitStack()
        self.settings: Settings
        self.db: Database
        self.admin_key: str
        self.service_url: str

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Stack:
        try:
            self._start()
        except BaseException:
            self._exits.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._exits.close()

    def _start(self) -> None:
        database_url = self._exits.enter_context(
            fresh_database(self.base_database_url, self.run_dir, prefix="orders_bench")
        )
        redis_server = EmbeddedRedis(self.run_dir / "redis")
        redis_url = redis_server.start()
        self._exits.callback(redis_server.stop)
        # Exports go to the run's temporary directory: a 1M-row file must not outlive the run under var/.
        # Webhook receivers of the bench listen on 127.0.0.1 (bench/webhooks.py).
        self.settings = Settings(
            database_url=database_url,
            redis_url=redis_url,
            log_level="INFO",
            export_dir=self.run_dir / "exports",
            webhook_allow_private_urls=True,
        )
        upgrade(self.settings)
        self.db = Database.connect(self.settings)
        self._exits.callback(self.db.dispose)
        upsert_offer(self.db, OFFER_ID, name="Bench offer", price=OFFER_PRICE, stock=OFFER_STOCK, currency="USD")
        self.admin_key = issue_key(self.db, "admin").key
        for queue, concurrency in WORKER_LINES:
            worker = start_worker(
                self.settings, self.run_dir / f"worker-{queue}.log", queues=queue, concurrency=concurrency, name=queue
            )
            self._exits.callback(stop_process, worker)
        self.service_url = self._exits.enter_context(self.web("api.app:get_app()", "service", ready_path="/readyz"))
        self._wait_for_workers(len(WORKER_LINES))

    def _wait_for_workers(self, count: int) -> None:
        app = create_celery_app(self.settings)
        try:
            wait_for(lambda: len(app.control.ping(timeout=0.5)) >= count, timeout=60, what=f"{count} workers")
        finally:
            app.close()

    # -- helpers for workloads ---------------------------------------------------------------

    @property
    def headers(self) -> dict[str, str]:
        """Headers of an admin client (sees every order and task)."""
        return {"Authorization": f"Bearer {self.admin_key}", "Content-Type": "application/json"}

    def env(self, **extra: str) -> dict[str, str]:
        """The environment that points a child process at this stack's database and Redis."""
        return settings_env(self.settings, **extra)

    @contextmanager
    def web(
        self, app_spec: str, name: str, *, ready_path: str = "/", extra_env: dict[str, str] | None = None
    ) -> Iterator[str]:
        """``app_spec`` under gunicorn with the service's own config (``config/gunicorn.py``),
        the same workers and threads; yields its base URL and stops it afterwards."""
        port = free_port()
        env = self.env(
            PORT=str(port),
            HOST="127.0.0.1",
            WEB_CONCURRENCY=str(self.options.web_workers),
            WEB_THREADS=str(self.options.web_threads),
            **(extra_env or {}),
        )
        log = (self.run_dir / f"web-{name}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "python:config.gunicorn", app_spec],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: self._answers(base + ready_path, process), timeout=60, what=f"{name} web on {base}")
            yield base
        finally:
            stop_process(process)
            log.close()

    @contextmanager
    def process(self, argv: list[str], name: str) -> Iterator[subprocess.Popen[bytes]]:
        """Any helper process (a floor's worker, …) with this stack's environment; stopped afterwards."""
        log = (self.run_dir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            argv, cwd=PROJECT_ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process
        finally:
            stop_process(process)
            log.close()

    @staticmethod
    def _answers(url: str, process: subprocess.Popen[bytes]) -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"web process for {url} exited with {process.returncode}")
        try:
            return requests.get(url, timeout=1).status_code < 500
        except requests.RequestException:
            return False

    def settle(self, timeout: float = 120.0) -> None:
        """Wait until the workers drained every queue, so one workload's backlog never taxes the next."""
        client = redis.Redis.from_url(self.settings.redis_url)
        try:

            def drained() -> bool:
                waiting = sum(int(client.llen(queue)) for queue in ALL_QUEUES)
                return waiting == 0 and int(client.hlen("unacked")) == 0

            wait_for(drained, timeout=timeout, interval=0.2, what="the queues to drain")
        finally:
            client.close()

    def seed_orders(self, count: int, *, batch: int = 5000) -> list[str]:
        """Insert ``count`` orders with one item each straight through SQLAlchemy Core (seconds,
        where the API would take minutes); returns their ids."""
        orders, items = Order.__table__, OrderItem.__table__
        now = datetime.now(UTC)
        ids: list[str] = []
        with self.db.write_engine.begin() as conn:
            for start in range(0, count, batch):
                rows, item_rows = [], []
                for _ in range(min(batch, count - start)):
                    order_id = new_id("ord")
                    ids.append(order_id)
                    rows.append(
                        {
                            "id": order_id,
                            "customer_id": f"cust_{secrets.randbelow(1000)}",
                            "status": "pending_payment",
                            "payment_status": "unpaid",
                            "payment_method": "credit_card",
                            "payment_gateway_id": "stripe_1",
                            "total_amount": OFFER_PRICE,
                            "currency": "USD",
                            "item_count": 1,
                            "version": 1,
                            "hold_expires_at": now + timedelta(minutes=30),
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
                    item_rows.append(
                        {
                            "id": new_id("item"),
                            "order_id": order_id,
                            "position": 0,
                            "offer_id": OFFER_ID,
                            "quantity": 1,
                            "price": OFFER_PRICE,
                            "status": "pending",
                        }
                    )
                conn.execute(insert(orders), rows)
                conn.execute(insert(items), item_rows)
        return ids


def load_average() -> tuple[float, float, float]:
    """The machine's 1/5/15-minute load, recorded with the results (other suites share the CPUs)."""
    return os.getloadavg()
