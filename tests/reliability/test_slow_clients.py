"""Slow clients cannot starve the API: the real web process (as the Procfile starts it) keeps
answering health probes and normal reads while 100 slowloris sockets trickle request heads,
20 clients trickle request bodies, and 50 clients wait on jobs that never finish.

Bounds: every probe answers 200 within ``PROBE_BOUND_SECONDS``; each scenario is bounded in time
(pytest-timeout) and every wait polls with a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
import requests
from sqlalchemy import func, select

from models import Job
from tests.conftest import auth
from tests.reliability.conftest import wait_ready
from tests.support.polling import wait_for
from tests.support.processes import start_web, stop_process
from workers.embedded_redis import free_port

PROBE_BOUND_SECONDS = 2.0
PROBES = 12
SLOWLORIS_SOCKETS = 100
SLOW_BODIES = 20


@dataclass
class Web:
    base: str
    port: int


@pytest.fixture(scope="module")
def web(settings, tmp_path_factory) -> Iterator[Web]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # Its messages go to queues no worker consumes (other tests of the session keep a worker on
    # the usual ones), so the exports the waiters wait on are never run.
    unserved = settings.with_(queue_prefix="slow-clients-unserved-")
    process = start_web(unserved, port, tmp_path_factory.mktemp("slow-clients") / "web.log")
    try:
        wait_ready(base)
        yield Web(base, port)
    finally:
        stop_process(process)


@dataclass
class Trickler:
    """Sockets that send a request's start at once, then one more byte per ``interval``, never finishing."""

    port: int
    interval: float = 1.0
    sockets: list[socket.socket] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    rounds: int = 0
    dropped: int = 0

    def open(self, count: int, start: bytes) -> None:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            sock.sendall(start)
            self.sockets.append(sock)

    def run(self, deadline: float) -> None:
        while not self.stop.is_set() and time.monotonic() < deadline:
            for sock in self.sockets:
                if sock.fileno() == -1:
                    continue
                try:
                    sock.send(b"a")
                except OSError:
                    sock.close()
                    self.dropped += 1
            self.rounds += 1
            self.stop.wait(self.interval)

    def close(self) -> None:
        self.stop.set()
        for sock in self.sockets:
            sock.close()


def _probe(url: str, headers: dict[str, str] | None = None) -> tuple[int | None, float]:
    started = time.monotonic()
    try:
        status: int | None = requests.get(url, headers=headers, timeout=PROBE_BOUND_SECONDS).status_code
    except requests.RequestException:
        status = None
    return status, time.monotonic() - started


def _probe_all(url: str, headers: dict[str, str] | None = None) -> list[tuple[int | None, float]]:
    return [_probe(url, headers) for _ in range(PROBES)]


def _answered(results: list[tuple[int | None, float]]) -> int:
    return sum(1 for status, took in results if status == 200 and took < PROBE_BOUND_SECONDS)


def _figure(results: list[tuple[int | None, float]]) -> str:
    return f"{_answered(results)}/{PROBES} (slowest {max(took for _, took in results):.3f} s)"


@pytest.mark.timeout(60)
def test_health_answers_under_slowloris_and_slow_bodies(web: Web) -> None:
    trickler = Trickler(web.port)
    try:
        # Heads that never end: the request line and one header, then a byte a second of a second header.
        trickler.open(SLOWLORIS_SOCKETS, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        # Bodies that never end: complete headers announcing 1,000 bytes, then a byte a second.
        trickler.open(
            SLOW_BODIES,
            b"POST /api/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{",
        )
        driver = threading.Thread(target=trickler.run, args=(time.monotonic() + 40,), daemon=True)
        driver.start()
        wait_for(lambda: trickler.rounds >= 2, timeout=10, what="the slow clients to start trickling")

        results = _probe_all(web.base + "/healthz")
        assert trickler.dropped == 0, "the slow sockets must still be open while probing"
    finally:
        trickler.close()
    answered = _answered(results)
    print(f"\n/healthz under {SLOWLORIS_SOCKETS} slowloris + {SLOW_BODIES} slow bodies: {_figure(results)}")
    assert answered == PROBES, results


@pytest.mark.timeout(60)
def test_prefer_wait_flood_holds_no_threads(web: Web, make_key, deps, make_offer) -> None:
    """50 clients wait (``Prefer: wait=10``) on exports no worker will ever run (none is started)."""
    ops = make_key("ops")
    headers = auth(ops)
    created = requests.post(
        web.base + "/api/orders",
        json={
            "customerId": "cust_slow",
            "items": [{"offerId": make_offer(), "quantity": 1, "price": 99.99}],
            "paymentMethod": "credit_card",
            "paymentGatewayId": "stripe_1",
        },
        headers=headers,
        timeout=10,
    )
    assert created.status_code == 201, created.text
    order_url = web.base + f"/api/orders/{created.json()['orderId']}"

    def wait_on_export(_: int) -> requests.Response:
        return requests.post(
            web.base + "/api/orders/export",
            json={"format": "csv", "filters": {"status": "processing"}},
            headers={**headers, "Prefer": "wait=10"},
            timeout=30,
        )

    def queued_exports() -> int:
        with deps.db.reader() as session:
            return session.scalar(
                select(func.count()).select_from(Job).where(Job.owner_key_id == ops.id, Job.type == "export")
            )

    with ThreadPoolExecutor(max_workers=50) as pool:
        waiting = [pool.submit(wait_on_export, n) for n in range(50)]
        wait_for(lambda: queued_exports() == 50, timeout=20, what="all 50 waiters to have queued their export")
        health = _probe_all(web.base + "/healthz")
        reads = _probe_all(order_url, headers)
        figures = f"/healthz {_figure(health)}, GET order {_figure(reads)}"
        print(f"\nunder 50 Prefer: wait clients: {figures}")
        answers = [future.result() for future in waiting]

    assert _answered(health) == PROBES, health
    assert _answered(reads) == PROBES, reads
    # Nobody finished the exports: every waiter got the ordinary 202 once its wait ran out.
    assert {answer.status_code for answer in answers} == {202}
    assert all("Preference-Applied" not in answer.headers for answer in answers)
    assert all(answer.json()["statusUrl"].startswith("/api/tasks/") for answer in answers)


def _read_until_closed(sock: socket.socket, deadline: float) -> bytes:
    received = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"the server did not close the connection in time; got {received!r}")


@pytest.mark.timeout(60)
def test_stalled_heads_and_bodies_are_answered_408_and_closed(settings, tmp_path) -> None:
    """Past the deadlines (shortened here to 1 s) a trickling client gets the envelope and is let go."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = start_web(
        settings, port, tmp_path / "web.log", REQUEST_HEAD_TIMEOUT_SECONDS="1", REQUEST_BODY_TIMEOUT_SECONDS="1"
    )
    try:
        wait_ready(base)
        head = socket.create_connection(("127.0.0.1", port), timeout=5)
        head.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: a")
        body = socket.create_connection(("127.0.0.1", port), timeout=5)
        body.sendall(b"POST /api/orders HTTP/1.1\r\nHost: x\r\nX-Request-Id: slow-body-1\r\nContent-Length: 9\r\n\r\n{")
        silent = socket.create_connection(("127.0.0.1", port), timeout=5)
        # A kept-alive connection whose second head stalls is closed after ``keepalive`` (5 s).
        kept = socket.create_connection(("127.0.0.1", port), timeout=5)
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while not first.endswith(b'{"status":"ok"}'):
            first += kept.recv(65536)
        kept.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: a")
        deadline = time.monotonic() + 10
        answers = {name: _read_until_closed(sock, deadline) for name, sock in (("head", head), ("body", body))}
        assert _read_until_closed(silent, deadline) == b""  # nothing sent, nothing answered: just closed
        assert _read_until_closed(kept, deadline) == b""
        for sock in (head, body, silent, kept):
            sock.close()
        assert _probe(base + "/healthz")[0] == 200
    finally:
        stop_process(web)
    for name, answer in answers.items():
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line.startswith(b"HTTP/1.1 408 "), (name, answer)
        headers, _, payload = rest.partition(b"\r\n\r\n")
        assert b"content-type: application/json" in headers.lower(), (name, answer)
        assert json.loads(payload)["error"]["code"] == "REQUEST_TIMEOUT", (name, answer)
    assert json.loads(answers["body"].partition(b"\r\n\r\n")[2])["error"]["requestId"] == "slow-body-1"


@pytest.mark.timeout(60)
def test_connections_over_the_cap_get_a_503_envelope(settings, tmp_path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = start_web(settings, port, tmp_path / "web.log", workers=1, WEB_CONNECTIONS="5")
    held: list[socket.socket] = []
    try:
        wait_ready(base)
        for _ in range(5):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            held[-1].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # a head left open
        wait_for(lambda: _probe(base + "/healthz")[0] == 503, timeout=10, what="the cap to be reached")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as extra:
            answer = _read_until_closed(extra, time.monotonic() + 5)
        for sock in held:
            sock.close()
        wait_for(lambda: _probe(base + "/healthz")[0] == 200, timeout=10, what="room again once they closed")
    finally:
        for sock in held:
            sock.close()
        stop_process(web)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 503 "), answer
    headers, _, payload = rest.partition(b"\r\n\r\n")
    assert b"retry-after: 5" in headers.lower() and b"content-type: application/json" in headers.lower()
    assert json.loads(payload)["error"]["code"] == "SERVICE_UNAVAILABLE"


@pytest.mark.timeout(60)
def test_on_sigterm_waiting_clients_get_their_202_at_once(settings, make_key, deps, tmp_path) -> None:
    """A graceful stop does not sit out the waits (up to 30 s): waiting clients get the 202 and poll."""
    ops = make_key("ops")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = start_web(settings, port, tmp_path / "web.log")
    try:
        wait_ready(base)
        headers = {**auth(ops), "Prefer": "wait=30"}

        def queued() -> int:
            with deps.db.reader() as session:
                return session.scalar(select(func.count()).select_from(Job).where(Job.owner_key_id == ops.id))

        with ThreadPoolExecutor(max_workers=3) as pool:
            export = {"format": "csv"}
            waiting = [
                pool.submit(requests.post, base + "/api/orders/export", json=export, headers=headers, timeout=40)
                for _ in range(3)
            ]
            wait_for(lambda: queued() == 3, timeout=10, what="the waiters to have queued their exports")
            stopped_at = time.monotonic()
            os.kill(web.pid, signal.SIGTERM)
            answers = [future.result() for future in waiting]
            answered_after = time.monotonic() - stopped_at
        web.wait(20)
    finally:
        stop_process(web)
    assert [answer.status_code for answer in answers] == [202, 202, 202]
    assert answered_after < 5, answered_after
    assert web.returncode == 0
