"""Latency of the order list and metrics over HTTP, each beside its floor (the same SQL, straight
through the driver), at a million orders.

    .venv/bin/python -m bench.list_orders                       # 1,000,000 rows, PostgreSQL and SQLite
    .venv/bin/python -m bench.list_orders --rows 200000 --db postgresql --requests 100

For each database: load N orders quickly (PostgreSQL ``COPY``; SQLite one ``executemany``
transaction) into a fresh, migrated database (``--reuse`` keeps an already loaded one), start the
API under gunicorn (``config/gunicorn.py``: the asyncio front), then for each scenario

1. a page of 50 filtered by status, ordered by createdAt desc (with its count);
2. a customer's orders, asked with that customer's key (scoping + auth included);
3. a ``totalAmount gt`` range ordered by totalAmount;
4. metrics for one calendar month grouped by day;

measure the median and p99 of sequential requests over one keep-alive connection, and the floor:
the exact statements the service issued for that request (captured from SQLAlchemy with their
parameters), replayed through a bare DBAPI connection the same number of times. Prints a table
with the ratios and writes JSON to ``bench/results/``. Each order gets one item (list entries carry
their items); the status page is measured with them and, through ``$select``, without them, which
is what the items cost.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import random
import secrets
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import requests
from sqlalchemy import create_engine, event, make_url, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import Figure, Stack, Workload  # noqa: E402
from config.settings import Settings  # noqa: E402
from models import Database  # noqa: E402
from models.ids import _encode  # noqa: E402
from models.migrate import upgrade  # noqa: E402
from services.access.keys import issue_key  # noqa: E402
from services.kernel.principal import Principal  # noqa: E402
from services.orders.listing import ListOrders, list_orders  # noqa: E402
from services.orders.metrics import MetricsQuery, order_metrics  # noqa: E402
from services.orders.query.fields import FIELDS  # noqa: E402

RESULTS = ROOT / "bench" / "results"
VAR = ROOT / "bench" / "var"
STATUSES = [("pending_payment", 15), ("processing", 15), ("shipped", 15), ("completed", 40), ("cancelled", 10)]
STATUSES += [("refunded", 5)]
PAYMENT_BY_STATUS = {
    "processing": "completed",
    "shipped": "completed",
    "completed": "completed",
    "refunded": "refunded",
}
COLUMNS = (
    "id, customer_id, status, payment_status, payment_method, payment_gateway_id, total_amount, currency, "
    "item_count, version, hold_expires_at, checkout_url, created_at, updated_at"
)
ITEM_COLUMNS = "id, order_id, position, offer_id, quantity, price, status"
# Every list field but items: the page as it was before entries carried their items.
WITHOUT_ITEMS = ",".join(FIELDS)


def item_of(order: tuple[Any, ...]) -> tuple[Any, ...]:
    """The order's one item (``generate`` gives every order ``item_count`` 1)."""
    return (f"item_{order[0][4:]}", order[0], 0, "offer_456", 1, order[6], "pending")


NOW = datetime(2026, 6, 1, tzinfo=UTC)
SPAN_DAYS = 365


def generate(rows: int, customers: int, seed: int = 5) -> Any:
    """Yield order tuples: created uniformly over the year before NOW, ids time-sortable."""
    rng = random.Random(seed)
    names = [name for name, _ in STATUSES]
    weights = [weight for _, weight in STATUSES]
    span = SPAN_DAYS * 86400 * 1_000_000
    start = NOW - timedelta(days=SPAN_DAYS)
    for n in range(rows):
        created = start + timedelta(microseconds=rng.randrange(span))
        millis = int(created.timestamp() * 1000)
        status = rng.choices(names, weights)[0]
        yield (
            f"ord_{_encode(millis, 10)}{n:016X}",
            f"cust_{rng.randrange(customers):06d}",
            status,
            PAYMENT_BY_STATUS.get(status, "unpaid"),
            "credit_card",
            "stripe_1",
            f"{rng.randrange(100, 100_000) / 100:.2f}",
            "USD",
            1,
            1,
            created + timedelta(minutes=30),
            None,
            created,
            created,
        )


def load_postgresql(url: str, rows: int, customers: int) -> None:
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    started = time.perf_counter()
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY orders ({COLUMNS}) FROM STDIN") as copy:
            buffer = io.StringIO()
            for count, row in enumerate(generate(rows, customers), 1):
                buffer.write(
                    "\t".join(
                        "\\N" if v is None else (v.isoformat() if isinstance(v, datetime) else str(v)) for v in row
                    )
                )
                buffer.write("\n")
                if count % 50_000 == 0:
                    copy.write(buffer.getvalue())
                    buffer = io.StringIO()
            copy.write(buffer.getvalue())
        with cur.copy(f"COPY order_items ({ITEM_COLUMNS}) FROM STDIN") as copy:
            buffer = io.StringIO()
            for count, row in enumerate(generate(rows, customers), 1):
                buffer.write("\t".join(str(v) for v in item_of(row)))
                buffer.write("\n")
                if count % 50_000 == 0:
                    copy.write(buffer.getvalue())
                    buffer = io.StringIO()
            copy.write(buffer.getvalue())
        conn.commit()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE orders")
        conn.execute("VACUUM ANALYZE order_items")
    print(f"  loaded {rows:,} rows into PostgreSQL in {time.perf_counter() - started:.1f} s", flush=True)


def _sqlite_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def load_sqlite(path: Path, rows: int, customers: int) -> None:
    started = time.perf_counter()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    placeholders = ", ".join("?" * 14)
    batch: list[tuple[Any, ...]] = []
    items: list[tuple[Any, ...]] = []
    insert_items = f"INSERT INTO order_items ({ITEM_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
    with conn:
        for row in generate(rows, customers):
            batch.append(tuple(_sqlite_time(v) if isinstance(v, datetime) else v for v in row))
            items.append(item_of(row))
            if len(batch) == 50_000:
                conn.executemany(f"INSERT INTO orders ({COLUMNS}) VALUES ({placeholders})", batch)
                conn.executemany(insert_items, items)
                batch, items = [], []
        conn.executemany(f"INSERT INTO orders ({COLUMNS}) VALUES ({placeholders})", batch)
        conn.executemany(insert_items, items)
    conn.execute("ANALYZE")
    conn.close()
    print(f"  loaded {rows:,} rows into SQLite in {time.perf_counter() - started:.1f} s", flush=True)


def prepare(kind: str, rows: int, customers: int, pg_url: str, reuse: bool) -> str:
    """A migrated database URL holding ``rows`` orders."""
    if kind == "sqlite":
        VAR.mkdir(parents=True, exist_ok=True)
        path = VAR / f"orders-bench-{rows}.db"
        url = f"sqlite:///{path}"
        if reuse and path.exists():
            return url
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        upgrade(Settings(database_url=url))
        load_sqlite(path, rows, customers)
        return url
    base = make_url(pg_url)
    name = f"orders_bench_{rows}"
    url = base.set(database=name).render_as_string(hide_password=False)
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        if exists and reuse:
            admin.dispose()
            return url
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    upgrade(Settings(database_url=url))
    load_postgresql(url, rows, customers)
    return url


@contextmanager
def gunicorn(url: str, port: int, log: Path) -> Any:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        "REDIS_URL": "redis://127.0.0.1:1/0",  # never used by these GETs
        "WEB_CONCURRENCY": os.environ.get("WEB_CONCURRENCY", "2"),
        "WEB_THREADS": os.environ.get("WEB_THREADS", "8"),
    }
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "--config", "python:config.gunicorn", "api.app:get_app()"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"gunicorn did not start; see {log}")
                time.sleep(0.2)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=30)


def capture(db: Database, call: Callable[[], Any]) -> list[tuple[str, Any]]:
    """The (statement, parameters) pairs ``call`` sends through the read engine."""
    captured: list[tuple[str, Any]] = []

    def listener(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        captured.append((statement, parameters))

    event.listen(db.read_engine, "before_cursor_execute", listener)
    try:
        call()
    finally:
        event.remove(db.read_engine, "before_cursor_execute", listener)
    return captured


def timings(run: Callable[[], Any], count: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, max(0, round(0.99 * len(ordered)) - 1))]
    return {"median_ms": round(statistics.median(ordered), 3), "p99_ms": round(p99, 3), "n": len(ordered)}


def floor_runner(
    kind: str, url: str, statements: list[tuple[str, Any]]
) -> tuple[Callable[[], None], Callable[[], None]]:
    if kind == "sqlite":
        conn = sqlite3.connect(make_url(url).database, check_same_thread=False)

        def run() -> None:
            for statement, parameters in statements:
                conn.execute(statement, parameters).fetchall()

        return run, conn.close
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    pg = psycopg.connect(conninfo, autocommit=True)

    def run_pg() -> None:
        with pg.cursor() as cur:
            for statement, parameters in statements:
                cur.execute(statement, parameters)
                cur.fetchall()

    return run_pg, pg.close


def scenarios(customer: str, month: tuple[date, date]) -> list[dict[str, Any]]:
    return [
        {
            "name": "status page (50, createdAt desc)",
            "path": "/api/orders",
            "params": {"$filter": "status eq 'processing'", "$orderby": "createdAt desc", "$top": "50"},
            "role": "admin",
        },
        {
            "name": "status page without items ($select)",
            "path": "/api/orders",
            "params": {
                "$filter": "status eq 'processing'",
                "$orderby": "createdAt desc",
                "$top": "50",
                "$select": WITHOUT_ITEMS,
            },
            "role": "admin",
        },
        {
            "name": "a customer's orders (customer key)",
            "path": "/api/orders",
            "params": {},
            "role": "customer",
        },
        {
            "name": "totalAmount gt range",
            "path": "/api/orders",
            "params": {"$filter": "totalAmount gt 990", "$orderby": "totalAmount", "$top": "50"},
            "role": "admin",
        },
        {
            "name": "metrics, one month by day",
            "path": "/api/orders/metrics",
            "params": {"startDate": month[0].isoformat(), "endDate": month[1].isoformat(), "groupBy": "day"},
            "role": "admin",
        },
    ]


def measure(
    kind: str, url: str, db: Database, base: str, secret_key: str, count: int, warmup: int
) -> list[dict[str, Any]]:
    """Every scenario against the API at ``base`` and against its floor (the statements the
    service issued for it, replayed through a bare driver connection)."""
    customer = "cust_000042"
    admin_key = issue_key(db, "admin")
    customer_key = issue_key(db, "customer", customer)
    keys = {"admin": admin_key, "customer": customer_key}
    principals = {
        "admin": Principal(key_id=admin_key.id, role="admin"),
        "customer": Principal(key_id=customer_key.id, role="customer", customer_id=customer),
    }
    first = (NOW - timedelta(days=60)).date().replace(day=1)
    month = (first, (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1))
    results = []
    session = requests.Session()
    for scenario in scenarios(customer, month):
        principal = principals[scenario["role"]]
        params = scenario["params"]
        if scenario["path"].endswith("metrics"):
            query = MetricsQuery(month[0], month[1], "day", "UTC")
            statements = capture(db, lambda query=query, principal=principal: order_metrics(db, principal, query))
        else:
            options = ListOrders(
                filter=params.get("$filter"),
                orderby=params.get("$orderby"),
                top=params.get("$top"),
                select=params.get("$select"),
            )
            statements = capture(
                db,
                lambda options=options, principal=principal: list_orders(db, principal, options, secret_key=secret_key),
            )
        headers = {"Authorization": f"Bearer {keys[scenario['role']].key}"}

        def http(scenario: dict[str, Any] = scenario, headers: dict[str, str] = headers) -> None:
            response = session.get(base + scenario["path"], params=scenario["params"], headers=headers, timeout=60)
            if response.status_code != 200:
                raise RuntimeError(f"{scenario['name']}: {response.status_code} {response.text[:300]}")

        http_stats = summary(timings(http, count, warmup))
        run, close = floor_runner(kind, url, statements)
        try:
            floor_stats = summary(timings(run, count, warmup))
        finally:
            close()
        ratio = round(http_stats["median_ms"] / floor_stats["median_ms"], 2) if floor_stats["median_ms"] else None
        results.append(
            {
                "scenario": scenario["name"],
                "http": http_stats,
                "floor": floor_stats,
                "ratio_median": ratio,
                "statements": [statement for statement, _ in statements],
                "captured": statements,
            }
        )
        print(
            f"  {scenario['name']:<36} http {http_stats['median_ms']:8.2f} / {http_stats['p99_ms']:8.2f} ms"
            f"   floor {floor_stats['median_ms']:8.2f} / {floor_stats['p99_ms']:8.2f} ms   x{ratio}",
            flush=True,
        )
    session.close()
    return results


def bench_database(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    print(f"== {kind}: {args.rows:,} orders", flush=True)
    url = prepare(kind, args.rows, args.customers, args.pg_url, args.reuse)
    settings = Settings(database_url=url)
    db = Database.connect(settings)
    with gunicorn(url, args.port, VAR / f"gunicorn-{kind}.log") as base:
        results = measure(kind, url, db, base, settings.secret_key, args.requests, args.warmup)
    db.dispose()
    return {"database": kind, "rows": args.rows, "results": results}


# --- make bench (bench/run.py) ---------------------------------------------------------------------

NAME = "list orders"


def _kind(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


def ensure_rows(stack: Stack, rows: int) -> int:
    """Load ``rows`` generated orders into the stack's database once per run and return how many
    orders it holds; the export workload reads the same rows, so a run pays for the load once.
    The generator is seeded, so its ids would collide on a second load: never load twice."""
    if getattr(stack, "bulk_rows", None) is None:
        url = stack.settings.database_url
        if _kind(url) == "sqlite":
            print(f"  loading {rows:,} orders (one executemany transaction) …", flush=True)
            load_sqlite(Path(make_url(url).database or ""), rows, max(100, rows // 50))
        else:
            print(f"  loading {rows:,} orders (COPY) …", flush=True)
            load_postgresql(url, rows, max(100, rows // 50))
        stack.bulk_rows = rows
    with stack.db.reader() as session:
        return int(session.execute(text("SELECT count(*) FROM orders")).scalar_one())


def http_floor(stack: Stack, results: list[dict[str, Any]], count: int, warmup: int) -> list[dict[str, float]]:
    """Each scenario's HTTP floor: its captured statements replayed by ``bench.floor_app`` under the
    service's own gunicorn settings and asked over one keep-alive connection, as the service was.
    The driver floor leaves out what every HTTP answer costs (about 1 ms sequential on this kind of
    machine: the client, the front, the thread hand-off); this one measures it on both sides."""
    replay_file = stack.run_dir / "list-floor-statements.pickle"
    replay_file.write_bytes(pickle.dumps({f"s{i}": row["captured"] for i, row in enumerate(results)}))
    floors = []
    with (
        stack.web("bench.floor_app:get_app()", "list-floor", extra_env={"FLOOR_REPLAY_FILE": str(replay_file)}) as base,
        requests.Session() as session,
    ):
        for i in range(len(results)):

            def http(url: str = f"{base}/floor/replay/s{i}") -> None:
                response = session.get(url, timeout=60)
                if response.status_code != 200:
                    raise RuntimeError(f"list floor {url}: {response.status_code} {response.text[:300]}")

            floors.append(summary(timings(http, count, warmup)))
    return floors


def run_workload(stack: Stack) -> list[Figure]:
    """The four scenarios over the running stack's API (gunicorn + workers) at ``--rows`` orders;
    sequential requests (``--round-trips`` of them) on one keep-alive connection per side, beside
    the driver floor (the same SQL, no HTTP) and the HTTP floor (the same SQL behind bare Falcon)."""
    total = ensure_rows(stack, stack.options.rows)
    count = stack.options.round_trips
    warmup = max(5, count // 10)
    results = measure(
        _kind(stack.settings.database_url),
        stack.settings.database_url,
        stack.db,
        stack.service_url,
        stack.settings.secret_key,
        count,
        warmup,
    )
    http_floors = http_floor(stack, results, count, warmup)
    figures = []
    for row, http_floor_stats in zip(results, http_floors, strict=True):
        notes = {"orders": total, "statements": row["statements"], "http": row["http"], "floor": row["floor"]}
        label = row["scenario"]
        http, floor = row["http"], row["floor"]
        figures.append(Figure(NAME, f"{label} p50 ms", http["median_ms"], floor["median_ms"], False, notes))
        figures.append(Figure(NAME, f"{label} p99 ms", http["p99_ms"], floor["p99_ms"], False))
        figures.append(
            Figure(NAME, f"{label} p50 ms vs HTTP floor", http["median_ms"], http_floor_stats["median_ms"], False)
        )
    return figures


def workloads() -> list[Workload]:
    return [Workload(NAME, run_workload, "GET /api/orders (3 filters) and /api/orders/metrics over --rows orders")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--db", choices=["postgresql", "sqlite", "both"], default="both")
    parser.add_argument(
        "--pg-url", default=os.environ.get("PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    )
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--reuse", action="store_true", help="keep an already loaded database of that size")
    args = parser.parse_args()
    kinds = ["postgresql", "sqlite"] if args.db == "both" else [args.db]
    report = {
        "started": datetime.now(UTC).isoformat(),
        "rows": args.rows,
        "requests": args.requests,
        "web": {"workers": os.environ.get("WEB_CONCURRENCY", "2"), "threads": os.environ.get("WEB_THREADS", "8")},
        "databases": [bench_database(kind, args) for kind in kinds],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"list_orders-{args.rows}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print()
    print(
        f"{'database':<11} {'scenario':<36} {'http p50':>9} {'http p99':>9} "
        f"{'floor p50':>10} {'floor p99':>10} {'x p50':>6}"
    )
    for database in report["databases"]:
        for row in database["results"]:
            print(
                f"{database['database']:<11} {row['scenario']:<36} {row['http']['median_ms']:9.2f} "
                f"{row['http']['p99_ms']:9.2f} {row['floor']['median_ms']:10.2f} {row['floor']['p99_ms']:10.2f} "
                f"{row['ratio_median']:6}"
            )
    print(f"\nJSON: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
