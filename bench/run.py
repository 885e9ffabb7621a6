"""``make bench``: start the stack once, run every workload, print service vs floor, save JSON.

Workloads live in their own modules under ``bench/`` and are found, not listed by hand, so a
branch that adds ``bench/export.py`` needs no edit here: any module exposing ``workloads()`` is
run (the protocol is in ``bench/README.md``). Known modules run in a fixed order so tables
from different runs line up; others follow alphabetically. A workload that fails is reported
and the run goes on, because one broken measurement should not cost the others' minutes.

Usage: ``python bench/run.py [--only NAME[,NAME]] [--quick] [--duration S] [--list]``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import pkgutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Figure, Options, Stack, Workload, load_average  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
# Run first, in this order; any other module with workloads() follows alphabetically.
KNOWN_MODULES = ("create_order", "get_order", "list_orders", "task_round_trip", "bulk_cancel", "export")
# Infrastructure, never searched for workloads.
NOT_WORKLOADS = frozenset({"run", "harness", "http_load", "floor_app", "floor_celery"})


def workload_modules() -> list[str]:
    present = {info.name for info in pkgutil.iter_modules([str(BENCH_DIR)])} - NOT_WORKLOADS
    known = [name for name in KNOWN_MODULES if name in present]
    return known + sorted(present - set(known))


def discover() -> tuple[list[Workload], list[str]]:
    """Every workload of every module; modules that fail to import are returned as errors."""
    found: list[Workload] = []
    errors: list[str] = []
    for name in workload_modules():
        try:
            module = importlib.import_module(f"bench.{name}")
        except Exception:
            errors.append(f"bench.{name}: import failed\n{traceback.format_exc()}")
            continue
        make = getattr(module, "workloads", None)
        if callable(make):
            found.extend(make())
    return found, errors


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def table(figures: list[Figure]) -> str:
    """The printed table; ratio = service / floor (req/s: higher is better; ms: lower is better)."""
    header = ("workload", "metric", "service", "floor", "ratio")
    rows = [(f.workload, f.metric, _fmt(f.service), _fmt(f.floor), _ratio(f)) for f in figures]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    aligned = [
        "  ".join(cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        for row in [header, *rows]
    ]
    rule = "-" * len(aligned[0])
    return "\n".join([aligned[0], rule, *aligned[1:]])


def _ratio(figure: Figure) -> str:
    ratio = figure.ratio
    if math.isnan(ratio):
        return "-"
    arrow = "↑" if figure.higher_is_better else "↓"
    return f"{ratio:.2f}x {arrow}"


def _failed_requests(name: str, figures: list[Figure]) -> list[str]:
    """Non-2xx answers or socket errors under load make a figure meaningless: report them."""
    found = []
    for figure in figures:
        for side in ("service", "floor"):
            counts = figure.notes.get(side)
            if isinstance(counts, dict) and (counts.get("non_2xx") or counts.get("socket_errors")):
                found.append(
                    f"{name}: {side} had {counts.get('non_2xx', 0)} non-2xx answers and "
                    f"{counts.get('socket_errors', 0)} socket errors under load"
                )
    return found


def _git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=BENCH_DIR, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _finite(row: dict[str, object]) -> dict[str, object]:
    """NaN is not JSON: a figure that could not be measured is written as null."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}


def save(payload: dict[str, object]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def parse_args(argv: list[str]) -> argparse.Namespace:
    defaults = Options()
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated workload names (see --list)")
    parser.add_argument("--list", action="store_true", help="list the workloads found and exit")
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 s loads, 30 round trips, 50k rows")
    parser.add_argument("--duration", type=float, default=defaults.duration, help="measured seconds per HTTP run")
    parser.add_argument("--rounds", type=int, default=defaults.rounds, help="alternating service/floor rounds")
    parser.add_argument("--warmup", type=float, default=defaults.warmup, help="discarded seconds before each run")
    parser.add_argument("--connections", type=int, default=defaults.connections, help="concurrent HTTP clients")
    parser.add_argument("--round-trips", type=int, default=defaults.round_trips, help="sequential task submissions")
    parser.add_argument("--rows", type=int, default=None, help="orders for list/export (default 1M; --quick 50k)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    options = Options(
        duration=args.duration,
        rounds=args.rounds,
        warmup=args.warmup,
        connections=args.connections,
        round_trips=args.round_trips,
    )
    if args.quick:
        options = replace(options, duration=3.0, warmup=1.0, round_trips=30, rows=50_000)
    if args.rows is not None:  # an explicit size wins over --quick's
        options = replace(options, rows=args.rows)
    workloads, errors = discover()
    if args.list:
        for workload in workloads:
            print(f"{workload.name:24} {workload.description}")
        return 0
    wanted = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = wanted - {w.name for w in workloads}
    if unknown:
        print(f"unknown workload(s): {', '.join(sorted(unknown))}; see --list", file=sys.stderr)
        return 2
    selected = [w for w in workloads if not wanted or w.name in wanted]

    started, started_at = time.monotonic(), datetime.now(UTC).isoformat()
    load_before = load_average()
    figures: list[Figure] = []
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="orders-bench-") as tmp:
        print(f"starting the stack (PostgreSQL database, embedded Redis, gunicorn, workers); logs in {tmp}", flush=True)
        with Stack(Path(tmp), options) as stack:
            for workload in selected:
                print(f"· {workload.name} …", flush=True)
                begun = time.monotonic()
                try:
                    got = workload.run(stack)
                except Exception:
                    errors.append(f"{workload.name}: failed\n{traceback.format_exc()}")
                    got = []
                timings[workload.name] = round(time.monotonic() - begun, 1)
                figures.extend(got)
                errors.extend(_failed_requests(workload.name, got))
                if got:
                    print(table(got), flush=True)
        if errors:  # keep the logs of a failed run: they are the evidence
            kept = Path(tempfile.mkdtemp(prefix="orders-bench-logs-"))
            for log in Path(tmp).glob("*.log"):
                log.rename(kept / log.name)
            errors.append(f"process logs kept in {kept}")
    load_after = load_average()

    print()
    print(table(figures))
    print("ratio = service / floor, both measured in this run; ↑ higher is better, ↓ lower is better")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} on {os.cpu_count()} CPUs")
    path = save(
        {
            "startedAt": started_at,
            "commit": _git_commit(),
            "options": asdict(options),
            "cpus": os.cpu_count(),
            "loadAverageBefore": load_before,
            "loadAverageAfter": load_after,
            "seconds": round(time.monotonic() - started, 1),
            "workloadSeconds": timings,
            "figures": [_finite({**asdict(f), "ratio": f.ratio}) for f in figures],
            "errors": errors,
        }
    )
    print(f"results: {path.relative_to(BENCH_DIR.parent)}")
    for error in errors:
        print(f"\nERROR {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
