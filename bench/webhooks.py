"""Create order with webhook subscribers: ``POST /api/orders`` while 10 endpoints are subscribed
to every event (one of them never answers), against the same load with no subscription.

Both sides are the same service (the events are written either way: they are part of placing an
order); the difference is the fan-out: the dispatcher positions each event and writes ten
deliveries, and the ``webhooks`` workers POST them to a receiver on 127.0.0.1 (nine answer 200 at
once, one holds every request until the client's timeout). Rounds alternate without/with, and the
endpoints are deleted after each "with" round (their pending deliveries fail at once), so the
queues drain between rounds. The "floor" column is placement without subscriptions.

``python -m bench.webhooks`` runs it alone and prints both figures and their ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import requests
from sqlalchemy import func, select

from bench.harness import ORDER_BODY, Figure, Options, Stack, Workload, throughput_figures
from bench.http_load import combine, lua_script, run_wrk
from models import WebhookDelivery
from services.events.record import EVENT_TYPES
from tests.support.receiver import Receiver

NAME = "create order with 10 webhooks (1 hanging)"
ENDPOINTS = 10


def _subscribe(stack: Stack, receiver: Receiver, round_no: int) -> list[str]:
    ids = []
    for index in range(ENDPOINTS):
        path = f"/hang/bench-{round_no}" if index == 0 else f"/ok/bench-{round_no}-{index}"
        created = requests.post(
            stack.service_url + "/api/webhook-endpoints",
            json={"url": receiver.url(path), "eventTypes": list(EVENT_TYPES)},
            headers=stack.headers,
            timeout=10,
        )
        created.raise_for_status()
        ids.append(created.json()["id"])
    return ids


def _unsubscribe(stack: Stack, ids: list[str]) -> None:
    for endpoint_id in ids:
        requests.delete(f"{stack.service_url}/api/webhook-endpoints/{endpoint_id}", headers=stack.headers, timeout=10)


def _delivered(stack: Stack) -> int:
    with stack.db.reader() as session:
        query = select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.state == "succeeded")
        return int(session.scalar(query) or 0)


def run(stack: Stack) -> list[Figure]:
    options = stack.options
    receiver = Receiver().start()
    try:
        url = stack.service_url + "/api/orders"
        script = lua_script(method="POST", body=ORDER_BODY, headers=stack.headers)
        rounds = max(1, options.rounds)
        runs: dict[str, list] = {"without": [], "with": []}
        if options.warmup > 0:
            run_wrk(url, script=script, connections=options.connections, duration=options.warmup)
            stack.settle()
        delivered_before = _delivered(stack)
        for round_no in range(rounds):
            for side in ("without", "with"):
                ids = _subscribe(stack, receiver, round_no) if side == "with" else []
                duration = options.duration / rounds
                result = run_wrk(url, script=script, connections=options.connections, duration=duration)
                runs[side].append(result)
                _unsubscribe(stack, ids)
                stack.settle()
        with_subs, without = combine(runs["with"]), combine(runs["without"])
        figures = throughput_figures(NAME, with_subs, without)
        figures[0].notes["webhookDeliveriesSucceeded"] = _delivered(stack) - delivered_before
        hanging = sum(1 for path, _ in receiver.started if path.startswith("/hang/"))
        figures[0].notes["hangingRequestsReceived"] = hanging
        figures[0].notes["floorIs"] = "the same service with no webhook endpoint"
        print(
            f"{NAME}: with subscriptions {with_subs.rps:.0f} req/s (p99 {with_subs.p99_ms:.1f} ms), "
            f"without {without.rps:.0f} req/s (p99 {without.p99_ms:.1f} ms), "
            f"ratio {with_subs.rps / max(without.rps, 1e-9):.3f}; "
            f"{figures[0].notes['webhookDeliveriesSucceeded']} deliveries succeeded meanwhile",
            file=sys.stderr,
        )
        return figures
    finally:
        receiver.stop()


def workloads() -> list[Workload]:
    return [Workload(NAME, run, "POST /api/orders with 10 subscribed endpoints (one hanging) vs none, 32 clients")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    options = Options(duration=args.duration, rounds=args.rounds, warmup=args.warmup, connections=args.connections)
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as run_dir, Stack(Path(run_dir), options) as stack:
        for figure in run(stack):
            print(f"{figure.workload} | {figure.metric} | with {figure.service:.1f} | without {figure.floor:.1f}")


if __name__ == "__main__":
    main()
