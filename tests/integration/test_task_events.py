"""``GET /api/tasks/{id}/events``: a task's progress and outcome as Server-Sent Events.

Over HTTP to gunicorn as the Procfile runs it (the asyncio front serves the streams from its
loop), with the session's real worker building real exports: progress events arrive while the
file is being written, each once, then the final event; ``Last-Event-ID`` resumes without
repeats; another customer's task is a 404; idle streams hold no request thread and end within
their stated bounds. In process (no front), the request thread streams, with the same events.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import requests

from tests.conftest import auth, unique_customer
from tests.integration.helpers import brief_order, wait_task
from tests.integration.test_exports import make_orders
from tests.support.polling import wait_for
from tests.support.processes import start_web, stop_process
from tests.support.sse import Event, EventStream, parse
from workers.embedded_redis import free_port

ROWS = 20_000


def _healthy(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture(scope="module")
def web(settings, worker, tmp_path_factory) -> Iterator[str]:
    """gunicorn (one worker process) on the session's database, Redis and queues."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = start_web(settings, port, tmp_path_factory.mktemp("task-events") / "web.log", workers=1)
    try:
        wait_for(lambda: _healthy(base), timeout=60, what="gunicorn")
        yield base
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def export_customer(deps) -> str:
    """A customer with ROWS orders: an XLSX export of them takes long enough to report progress."""
    customer = unique_customer()
    with deps.db.transaction() as session:
        session.add_all(make_orders(customer, ROWS, text_fields=False))
    return customer


def _export(client, headers: dict[str, str], customer: str) -> str:
    body = {"format": "xlsx", "filters": {"customerId": customer}, "columns": ["id", "totalAmount", "createdAt"]}
    queued = client.simulate_post("/api/orders/export", json=body, headers=headers)
    assert queued.status_code == 202, queued.text
    return queued.json["taskId"]


def _named(events: list[Event]) -> list[Event]:
    return [event for event in events if event.event]


def _current(event: Event) -> int:
    return event.json["progress"]["current"]


def test_progress_of_a_real_export_arrives_as_it_happens(web, client, admin_headers, export_customer, contract):
    task_id = _export(client, admin_headers, export_customer)
    opened = time.monotonic()
    with EventStream(f"{web}/api/tasks/{task_id}/events", admin_headers) as stream:
        events = list(stream)
    response = stream.response
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["Cache-Control"] == "no-store"
    contract.check("GET", f"/api/tasks/{task_id}/events", 200, response.headers, stream.raw, stream.raw.decode())
    assert events[0].retry == 1000
    named = _named(events)
    progress, final = named[:-1], named[-1]
    assert final.event == "succeeded" and final.id == "succeeded", [event.event for event in named]
    assert final.json["taskId"] == task_id and final.json["state"] == "succeeded"
    assert final.json["result"]["rows"] == ROWS
    assert progress and all(event.event == "progress" for event in progress)
    currents = [_current(event) for event in progress]
    assert currents == sorted(currents), currents  # progress only rises
    # Pushed while the file was being written: values strictly between the start and the end.
    assert [current for current in currents if 0 < current < ROWS], currents
    assert len(set(currents)) >= 3, currents
    ids = [event.id for event in progress]
    assert len(ids) == len(set(ids))  # each snapshot once
    for event in progress:
        assert event.id == f"{_current(event)}-{event.json['progress']['total']}"
        assert event.json["taskId"] == task_id
    # Events came apart in time, as the export made them, not in one burst at the end.
    assert final.at - progress[0].at > 0.05
    print(
        f"\nstream of an export of {ROWS} rows: {len(progress)} progress events {currents}, final after "
        f"{final.at - opened:.2f} s; the mid-file ones at "
        + ", ".join(f"{event.at - opened:.2f}" for event in progress if 0 < _current(event) < ROWS)
        + " s"
    )


def test_last_event_id_resumes_without_repeating(web, client, admin_headers, export_customer):
    task_id = _export(client, admin_headers, export_customer)
    url = f"{web}/api/tasks/{task_id}/events"
    seen: list[Event] = []
    with EventStream(url, admin_headers) as first:
        for event in first:
            if event.event:
                seen.append(event)
            if event.event == "progress" and _current(event) > 0 or event.event == "succeeded":
                break  # the client goes away mid-stream
    last = seen[-1]
    assert last.event == "progress", [event.event for event in seen]
    with EventStream(url, {**admin_headers, "Last-Event-ID": last.id}) as second:
        rest = _named(list(second))
    assert rest and rest[-1].event == "succeeded"
    assert not {event.id for event in rest} & {event.id for event in seen}, (seen, rest)  # nothing seen twice
    assert all(_current(event) > _current(last) for event in rest if event.event == "progress")

    # Resumed after the last progress event: only the final one.
    final_progress = [event for event in seen + rest if event.event == "progress"][-1]
    with EventStream(url, {**admin_headers, "Last-Event-ID": final_progress.id}) as third:
        assert [event.event for event in _named(list(third))] == ["succeeded"]
    # Resumed after the final event: 204, which tells an EventSource to stop reconnecting.
    done = requests.get(url, headers={**admin_headers, "Last-Event-ID": "succeeded"}, timeout=10)
    assert done.status_code == 204 and done.content == b""
    # An id that is not one of ours: the stream starts afresh.
    with EventStream(url, {**admin_headers, "Last-Event-ID": "x" * 500}) as afresh:
        assert [event.event for event in _named(list(afresh))] == ["progress", "succeeded"]


def test_another_customers_task_is_404(web, client, make_key, make_offer):
    owner, other = unique_customer(), unique_customer()
    owner_key, other_key = make_key("customer", owner), make_key("customer", other)
    placed = client.simulate_post("/api/orders", json=brief_order(make_offer(), owner), headers=auth(owner_key))
    assert placed.status_code == 201, placed.text
    path = f"/api/tasks/{placed.json['taskId']}/events"

    in_process = client.simulate_get(path, headers=auth(other_key))
    assert in_process.status_code == 404 and in_process.json["error"]["code"] == "TASK_NOT_FOUND"
    over_http = requests.get(web + path, headers=auth(other_key), timeout=10)
    assert over_http.status_code == 404 and over_http.json()["error"]["code"] == "TASK_NOT_FOUND"
    assert requests.get(web + "/api/tasks/task_unknown/events", headers=auth(owner_key), timeout=10).status_code == 404
    assert requests.get(web + path, timeout=10).status_code == 401

    with EventStream(web + path, auth(owner_key)) as own:
        assert _named(list(own))[-1].event == "succeeded"


def test_in_process_the_request_thread_streams_the_same_events(client, admin_headers, make_offer, worker):
    """Without the front (Falcon's test client, any WSGI server), the same stream from the request thread."""
    placed = client.simulate_post(
        "/api/orders", json=brief_order(make_offer(), unique_customer()), headers=admin_headers
    )
    task_id = placed.json["taskId"]
    streamed = client.simulate_get(f"/api/tasks/{task_id}/events", headers=admin_headers)  # until it finished
    assert streamed.status_code == 200 and streamed.headers["content-type"] == "text/event-stream"
    events = [parse(block, 0.0) for block in streamed.text.split("\n\n") if block]
    named = _named(events)
    assert [event.event for event in named][-1] == "succeeded"
    assert all(event.event == "progress" for event in named[:-1])
    assert named[-1].json == wait_task(client, task_id, admin_headers)
    again = client.simulate_get(f"/api/tasks/{task_id}/events", headers={**admin_headers, "Last-Event-ID": "succeeded"})
    assert again.status_code == 204


MAX_SECONDS = 4
KEEPALIVE_SECONDS = 1
STREAMS = 6
THREADS = 2


@dataclass
class Held:
    events: list[Event]
    ended: float


@pytest.fixture(scope="module")
def idle_web(settings, tmp_path_factory) -> Iterator[str]:
    """gunicorn with 2 request threads whose tasks no worker runs (its queues are its own), and short stream bounds."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    unserved = settings.with_(queue_prefix="task-events-unserved-")
    process = start_web(
        unserved,
        port,
        tmp_path_factory.mktemp("idle-streams") / "web.log",
        workers=1,
        threads=THREADS,
        TASK_STREAM_MAX_SECONDS=str(MAX_SECONDS),
        TASK_STREAM_KEEPALIVE_SECONDS=str(KEEPALIVE_SECONDS),
    )
    try:
        wait_for(lambda: _healthy(base), timeout=60, what="gunicorn")
        yield base
    finally:
        stop_process(process)


def test_idle_streams_hold_no_thread_and_end_within_their_bound(idle_web, admin_headers):
    """STREAMS streams on tasks that never run, more than the THREADS request threads: the API still
    answers at once; each stream gets keep-alive comments and ends after MAX_SECONDS."""
    body = {"format": "csv", "filters": {"customerId": unique_customer()}}
    task_ids = []
    for _ in range(STREAMS):
        queued = requests.post(f"{idle_web}/api/orders/export", json=body, headers=admin_headers, timeout=10)
        assert queued.status_code == 202, queued.text
        task_ids.append(queued.json()["taskId"])
    opened = threading.Barrier(STREAMS + 1)

    def hold(task_id: str) -> Held:
        with EventStream(f"{idle_web}/api/tasks/{task_id}/events", admin_headers, timeout=MAX_SECONDS + 10) as stream:
            events = []
            for event in stream:
                events.append(event)
                if len(events) == 2:  # the opening (retry) and the queued task's progress
                    opened.wait(timeout=30)
            return Held(events, time.monotonic())

    started = time.monotonic()
    with ThreadPoolExecutor(STREAMS) as pool:
        held = [pool.submit(hold, task_id) for task_id in task_ids]
        opened.wait(timeout=30)
        probes = []
        for task_id in task_ids[:3]:
            began = time.monotonic()
            answer = requests.get(f"{idle_web}/api/tasks/{task_id}", headers=admin_headers, timeout=5)
            assert answer.status_code == 200 and answer.json()["state"] == "queued"
            assert requests.get(f"{idle_web}/healthz", timeout=5).status_code == 200
            probes.append(time.monotonic() - began)
        results = [future.result(timeout=MAX_SECONDS + 20) for future in held]
    assert max(probes) < 1.0, probes  # the streams hold no request thread
    for result in results:
        named = _named(result.events)
        assert [event.event for event in named] == ["progress"]  # no final event: the task never ran
        assert named[0].json["state"] == "queued"
        keepalives = [event for event in result.events if event.comments == ["keep-alive"]]
        assert len(keepalives) >= MAX_SECONDS // KEEPALIVE_SECONDS - 2, result.events
        lasted = result.ended - started
        assert MAX_SECONDS - 0.5 <= lasted <= MAX_SECONDS + 5, lasted
    print(f"\n{STREAMS} idle streams on {THREADS} threads: probes {[f'{p * 1000:.0f} ms' for p in probes]}")


def test_a_stopping_web_process_ends_its_streams_at_once(settings, admin_headers, tmp_path):
    """SIGTERM: open streams end now (their clients reconnect elsewhere), not after gunicorn's graceful timeout."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = start_web(settings.with_(queue_prefix="task-events-unserved-"), port, tmp_path / "web.log", workers=1)
    try:
        wait_for(lambda: _healthy(base), timeout=60, what="gunicorn")
        body = {"format": "csv", "filters": {"customerId": unique_customer()}}
        task_id = requests.post(f"{base}/api/orders/export", json=body, headers=admin_headers, timeout=10).json()[
            "taskId"
        ]
        with EventStream(f"{base}/api/tasks/{task_id}/events", admin_headers) as stream:
            events = iter(stream)
            assert next(events).retry == 1000 and next(events).event == "progress"
            os.killpg(web.pid, signal.SIGTERM)
            stopped = time.monotonic()
            rest = list(events)
            ended = time.monotonic() - stopped
        assert not _named(rest)  # no final event: the task did not finish
        assert ended < 3.0, ended
        assert stream.raw.endswith(b"\n\n")  # the response ended cleanly after a whole event
        web.wait(timeout=15)
        print(f"\nstream ended {ended * 1000:.0f} ms after SIGTERM")
    finally:
        stop_process(web)
