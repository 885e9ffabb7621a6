"""Export benchmark: 1,000,000 orders to csv and xlsx, from PostgreSQL and from SQLite.

For each database and format it runs, each in a fresh child process (so peak RSS is the run's
own, read with ``resource.getrusage`` in the child):

* ``floor``: the same query (same columns, same order, same snapshot and ``yield_per`` streaming)
  written by the bare library: ``csv.writer.writerow(row)`` / xlsxwriter ``constant_memory``
  ``write_row`` with the raw values, no formatting, no neutralising, no progress;
* ``export``: the service's code path, ``services.exports.build_export`` (formatting, injection
  neutralising, throttled progress writes to the job row, fsync, sha256, rename, exports row).

Usage::

    .venv/bin/python -m bench.export --rows 1000000 --db sqlite,postgres --formats csv,xlsx

It prints a table and writes JSON to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests

from bench.harness import Figure, Stack, Workload
from config.settings import PROJECT_ROOT, Settings
from services.exports.columns import DEFAULT_COLUMNS

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
COLUMNS = list(DEFAULT_COLUMNS)  # every exportable column, in the documented order
STATUSES = ("pending_payment", "processing", "shipped", "completed", "cancelled", "refunded")
METHODS = ("credit_card", "debit_card", "paypal", "bank_transfer")


def maxrss_mb() -> float:
    """This process's peak RSS. ``VmHWM`` belongs to the address space made at exec, whereas
    ``getrusage``'s ``ru_maxrss`` survives exec and would report the (bigger) parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# --- data -----------------------------------------------------------------------------------------


def order_rows(count: int) -> Any:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for i in range(count):
        created = start + timedelta(seconds=i * 17, microseconds=(i * 7919) % 1_000_000)
        yield {
            "id": f"ord_{i:026d}",
            "customer_id": f"cust_{i % 9973}",
            "status": STATUSES[i % len(STATUSES)],
            "payment_status": "paid",
            "payment_method": METHODS[i % len(METHODS)],
            "payment_gateway_id": "stripe_1",
            "total_amount": Decimal(i % 1_000_000) / 100 + Decimal("0.01"),
            "currency": "USD",
            "item_count": i % 9 + 1,
            "version": 1,
            "hold_expires_at": created + timedelta(minutes=30),
            "checkout_url": None,
            "created_at": created,
            "updated_at": created + timedelta(minutes=5),
        }


def load(settings: Settings, count: int) -> float:
    """Bulk-insert ``count`` orders; returns seconds."""
    from models import Database, Order
    from models.migrate import upgrade

    upgrade(settings)
    db = Database.connect(settings)
    begun = time.perf_counter()
    if settings.is_sqlite:
        table = Order.__table__
        batch: list[dict[str, Any]] = []
        with db.write_engine.begin() as conn:
            for row in order_rows(count):
                batch.append(row)
                if len(batch) == 50_000:
                    conn.execute(table.insert(), batch)
                    batch = []
            if batch:
                conn.execute(table.insert(), batch)
    else:
        raw = db.write_engine.raw_connection()
        try:
            names = list(next(order_rows(1)))
            with raw.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
                with cursor.copy(f"COPY orders ({', '.join(names)}) FROM STDIN") as copy:
                    for row in order_rows(count):
                        copy.write_row(tuple(row.values()))
            raw.commit()
        finally:
            raw.close()
        with db.write_engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE orders")
    elapsed = time.perf_counter() - begun
    db.dispose()
    return elapsed


# --- children ---------------------------------------------------------------------------------------


def child_floor(settings: Settings, fmt: str, out: Path, filters: dict[str, Any] | None = None) -> dict[str, Any]:
    """The bare library writing the same rows from the same query."""
    from sqlalchemy import select

    from models import Database
    from services.exports.columns import resolve_columns
    from services.exports.filters import ExportFilters, order_by_clauses, where_clause

    db = Database.connect(settings)
    columns = resolve_columns(COLUMNS)
    where = where_clause(ExportFilters.from_args(filters or {}))
    stmt = select(*(c.column for c in columns)).where(where).order_by(*order_by_clauses(None))
    baseline = maxrss_mb()
    begun = time.perf_counter()
    rows = 0
    with db.snapshot() as conn:
        result = conn.execute(stmt, execution_options={"stream_results": True, "yield_per": settings.export_fetch_rows})
        if fmt == "csv":
            with out.open("w", newline="", encoding="utf-8") as file:
                writer = csv.writer(file)
                writer.writerow(COLUMNS)
                for row in result:
                    writer.writerow(row)
                    rows += 1
        else:
            import xlsxwriter

            workbook = xlsxwriter.Workbook(
                str(out), {"constant_memory": True, "remove_timezone": True, "tmpdir": str(out.parent)}
            )
            sheet = workbook.add_worksheet()
            sheet.write_row(0, 0, COLUMNS)
            for row in result:
                rows += 1
                sheet.write_row(rows, 0, row)
            workbook.close()
    wall = time.perf_counter() - begun
    return {
        "wall": wall,
        "peak_rss_mb": maxrss_mb(),
        "baseline_rss_mb": baseline,
        "rows": rows,
        "bytes": out.stat().st_size,
    }


def child_export(settings: Settings, fmt: str, out: Path) -> dict[str, Any]:
    """The export task's code path, in process."""
    from models import Database
    from models.ids import new_id
    from services.exports import ExportPolicy, build_export
    from services.jobs.progress import set_progress

    db = Database.connect(settings)
    policy = ExportPolicy.from_settings(settings.with_(export_dir=out.parent))
    job_id = new_id("task")
    writes = [0]

    def progress(current: int, total: int) -> None:
        writes[0] += 1
        set_progress(db, job_id, current, total)

    export_id = new_id("exp")
    args = {"exportId": export_id, "format": fmt, "columns": COLUMNS, "filters": {}, "fileUrl": f"/exports/{export_id}"}
    baseline = maxrss_mb()
    begun = time.perf_counter()
    result = build_export(db, args, policy, job_id=job_id, report_progress=progress)
    wall = time.perf_counter() - begun
    return {
        "wall": wall,
        "peak_rss_mb": maxrss_mb(),
        "baseline_rss_mb": baseline,
        "rows": result["rows"],
        "bytes": result["bytes"],
        "progress_writes": writes[0],
    }


def run_child(kind: str, database_url: str, fmt: str, filters: dict[str, Any] | None = None) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{kind}-{fmt}-"))
    try:
        command = [sys.executable, "-m", "bench.export", "--child", kind, "--url", database_url, "--formats", fmt]
        command += ["--out", str(workdir / f"out.{fmt}"), "--filters", json.dumps(filters or {})]
        env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
        done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{kind} {fmt} failed:\n{done.stderr[-4000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# --- the run ----------------------------------------------------------------------------------------


def bench_database(name: str, count: int, formats: list[str], workdir: Path) -> list[dict[str, Any]]:
    from sqlalchemy import create_engine, make_url, text

    admin = None
    if name == "sqlite":
        url = f"sqlite:///{workdir / 'bench.db'}"
    else:
        base = make_url(PG_URL)
        dbname = f"bench_exports_{secrets.token_hex(4)}"
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{dbname}"'))
        url = base.set(database=dbname).render_as_string(hide_password=False)
    try:
        load_seconds = load(Settings(database_url=url), count)
        print(f"[{name}] loaded {count:,} orders in {load_seconds:.1f} s", flush=True)
        rows = []
        for fmt in formats:
            floor = run_child("floor", url, fmt)
            export = run_child("export", url, fmt)
            assert floor["rows"] == export["rows"] == count, (floor, export)
            rows.append(
                {"db": name, "format": fmt, "rows": count, "load_s": load_seconds, "floor": floor, "export": export}
            )
            print(
                f"[{name}] {fmt}: floor {floor['wall']:.2f} s / {floor['peak_rss_mb']:.0f} MB, "
                f"export {export['wall']:.2f} s / {export['peak_rss_mb']:.0f} MB",
                flush=True,
            )
        return rows
    finally:
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
            admin.dispose()


def print_table(results: list[dict[str, Any]]) -> None:
    header = (
        f"{'db':<9}{'fmt':<6}{'rows':>10}{'floor s':>10}{'export s':>10}{'time x':>8}"
        f"{'floor MB':>10}{'export MB':>11}{'RSS x':>7}{'file MB':>9}{'progress':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        f, e = r["floor"], r["export"]
        print(
            f"{r['db']:<9}{r['format']:<6}{r['rows']:>10,}{f['wall']:>10.2f}{e['wall']:>10.2f}"
            f"{e['wall'] / f['wall']:>8.2f}{f['peak_rss_mb']:>10.0f}{e['peak_rss_mb']:>11.0f}"
            f"{e['peak_rss_mb'] / f['peak_rss_mb']:>7.2f}{e['bytes'] / 1e6:>9.1f}{e['progress_writes']:>10}"
        )


# --- make bench (bench/run.py) ---------------------------------------------------------------------

NAME = "export"
# The list workload's generated orders were created in the year before 2026-06-01; orders the
# other workloads placed "now" are left out, so the file holds exactly the loaded rows (a million
# plus the create-order workload's rows would spill an XLSX past one sheet, and the floor writes one).
BENCH_FILTERS = {"endDate": "2026-06-01"}
POLL_SECONDS = 0.05
EXPORT_TIMEOUT_SECONDS = 1800.0


def service_export(stack: Stack, fmt: str) -> tuple[float, dict[str, Any]]:
    """``POST /api/orders/export`` on the running service, then poll the task until it succeeds:
    the seconds a client waits for its file (API, queue, exports worker, file, digest)."""
    with requests.Session() as session:
        session.headers.update(stack.headers)
        started = time.perf_counter()
        accepted = session.post(
            stack.service_url + "/api/orders/export",
            json={"format": fmt, "filters": BENCH_FILTERS, "columns": COLUMNS},
            timeout=30,
        )
        if accepted.status_code != 202:
            raise RuntimeError(f"POST /api/orders/export answered {accepted.status_code}: {accepted.text[:300]}")
        task_url = f"{stack.service_url}/api/tasks/{accepted.json()['taskId']}"
        deadline = started + EXPORT_TIMEOUT_SECONDS
        while time.perf_counter() < deadline:
            task = session.get(task_url, timeout=30).json()
            if task["state"] == "succeeded":
                return time.perf_counter() - started, task["result"]
            if task["state"] == "failed":
                raise RuntimeError(f"export task failed: {task['error']}")
            time.sleep(POLL_SECONDS)
    raise RuntimeError(f"export not finished after {EXPORT_TIMEOUT_SECONDS}s: {task_url}")


def run_workload(stack: Stack) -> list[Figure]:
    """csv and xlsx of the ``--rows`` loaded orders: the service through its API and exports
    worker vs the bare csv module / xlsxwriter (constant_memory) streaming the same query in a
    child process. The file the service wrote is removed at once (a million rows is ~100 MB)."""
    from bench.list_orders import ensure_rows

    ensure_rows(stack, stack.options.rows)
    stack.settle()
    figures = []
    for fmt in ("csv", "xlsx"):
        floor = run_child("floor", stack.settings.database_url, fmt, BENCH_FILTERS)
        seconds, result = service_export(stack, fmt)
        for leftover in Path(stack.settings.export_dir).glob(f"{result['exportId']}*"):
            leftover.unlink(missing_ok=True)
        if result["rows"] != floor["rows"]:
            raise RuntimeError(f"{fmt}: the service wrote {result['rows']} rows, the floor {floor['rows']}")
        notes = {"rows": result["rows"], "bytes": result["bytes"], "floor": floor}
        figures.append(Figure(NAME, f"{fmt} {result['rows']:,} rows s", seconds, floor["wall"], False, notes))
        print(f"  {fmt}: service {seconds:.1f} s, floor {floor['wall']:.1f} s ({result['rows']:,} rows)", flush=True)
    return figures


def workloads() -> list[Workload]:
    return [Workload(NAME, run_workload, "POST /api/orders/export csv and xlsx of --rows orders until succeeded")]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", default="postgres,sqlite")
    parser.add_argument("--formats", default="csv,xlsx")
    parser.add_argument("--child", choices=["floor", "export"])
    parser.add_argument("--url")
    parser.add_argument("--out")
    parser.add_argument("--filters", default="{}", help="child only: the export's filters as JSON")
    args = parser.parse_args(argv)

    if args.child:
        settings = Settings(database_url=args.url)
        if args.child == "floor":
            print(json.dumps(child_floor(settings, args.formats, Path(args.out), json.loads(args.filters))))
        else:
            print(json.dumps(child_export(settings, args.formats, Path(args.out))))
        return 0

    formats = [f for f in args.formats.split(",") if f]
    results: list[dict[str, Any]] = []
    workdir = Path(tempfile.mkdtemp(prefix="bench-export-"))
    try:
        for name in [d for d in args.db.split(",") if d]:
            results += bench_database(name, args.rows, formats, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print_table(results)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"export-{stamp}.json"
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}
    path.write_text(json.dumps({"rows": args.rows, "machine": machine, "results": results}, indent=2))
    print(f"\nwritten {path.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
