"""The whole service as `make run` starts it (runner → honcho → gunicorn, worker, beat, and an
embedded Redis), driven over real HTTP, then stopped with Ctrl-C (SIGINT)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from config.settings import PROJECT_ROOT
from services.payments.gateways.signing import sign
from tests.support.polling import wait_for
from tests.support.receiver import Receiver
from workers.embedded_redis import free_port

pytestmark = pytest.mark.e2e


class Stack:
    def __init__(self, process: subprocess.Popen[bytes], base: str, secret: str, log: Path) -> None:
        self.process, self.base, self.secret, self.log = process, base, secret, log

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}

    def url(self, path: str) -> str:
        return self.base + path


def _ready(base: str) -> bool:
    try:
        return requests.get(base + "/readyz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, database_url: str):
    var_dir = tmp_path_factory.mktemp("var")
    port = free_port()
    secret = "sk_e2e_" + secrets.token_hex(16)
    env = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "SECRET_KEY")}
    env.update(PORT=str(port), VAR_DIR=str(var_dir), DATABASE_URL=database_url, ADMIN_API_KEY=secret, HOST="127.0.0.1")
    env.update(WEBHOOK_ALLOW_PRIVATE_URLS="1")  # the webhook receiver below listens on 127.0.0.1
    log = var_dir / "run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "run"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: process.poll() is None and _ready(base) or process.poll() is not None,
            timeout=90,
            what="the stack to become ready",
        )
        assert process.poll() is None, log.read_text()[-4000:]
        yield Stack(process, base, secret, log)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def _put_offer(stack: Stack, stock: int, price: str = "99.99") -> str:
    offer_id = "offer_" + secrets.token_hex(5)
    put = requests.put(
        stack.url(f"/api/offers/{offer_id}"),
        json={"name": "e2e", "price": float(price), "stock": stock},
        headers=stack.headers,
        timeout=10,
    )
    assert put.status_code == 200, put.text
    return offer_id


def _order(offer_id: str) -> dict:
    return {
        "customerId": "cust_" + secrets.token_hex(4),
        "items": [{"offerId": offer_id, "quantity": 1, "price": 99.99}],
        "paymentMethod": "credit_card",
        "paymentGatewayId": "stripe_1",
    }


def test_the_procfiles_webhooks_worker_delivers_signed_events(stack: Stack) -> None:
    """An endpoint subscribed over HTTP gets the order's ``order.created`` and its checkout's
    ``task.finished``, signed with the secret it was given (the Procfile's webhooks line runs)."""
    receiver = Receiver().start()
    try:
        customer = "cust_" + secrets.token_hex(4)
        subscribed = requests.post(
            stack.url("/api/webhook-endpoints"),
            json={
                "url": receiver.url("/ok/e2e"),
                "eventTypes": ["order.created", "task.finished"],
                "customerId": customer,
            },
            headers=stack.headers,
            timeout=10,
        )
        assert subscribed.status_code == 201, subscribed.text
        order = _order(_put_offer(stack, stock=5))
        order["customerId"] = customer
        created = requests.post(stack.url("/api/orders"), json=order, headers=stack.headers, timeout=10)
        assert created.status_code == 201, created.text
        wait_for(lambda: len(receiver.on("/ok/e2e")) >= 2, timeout=30, what="both events at the receiver")
        verifier = Webhook(subscribed.json()["secret"])
        events = [verifier.verify(request.body, request.headers) for request in receiver.on("/ok/e2e")]
        assert [event["type"] for event in events] == ["order.created", "task.finished"]
        assert {event["data"]["orderId"] for event in events} == {created.json()["orderId"]}
    finally:
        receiver.stop()


def test_brief_order_over_http_and_checkout_task_succeeds(stack: Stack) -> None:
    offer_id = _put_offer(stack, stock=5)
    created = requests.post(stack.url("/api/orders"), json=_order(offer_id), headers=stack.headers, timeout=10)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "pending_payment" and body["totalAmount"] == 99.99

    def finished() -> dict | None:
        task = requests.get(stack.url(f"/api/tasks/{body['taskId']}"), headers=stack.headers, timeout=5).json()
        return task if task["state"] in ("succeeded", "failed") else None

    task = wait_for(finished, timeout=30, what="the checkout task")
    assert task["state"] == "succeeded", task
    order = requests.get(stack.url(f"/api/orders/{body['orderId']}"), headers=stack.headers, timeout=5).json()
    assert order["items"][0]["offerId"] == offer_id


def test_fifty_concurrent_buyers_of_ten_units(stack: Stack) -> None:
    offer_id = _put_offer(stack, stock=10)

    def buy(_: int) -> tuple[int, str | None]:
        response = requests.post(stack.url("/api/orders"), json=_order(offer_id), headers=stack.headers, timeout=30)
        code = response.json().get("error", {}).get("code") if response.status_code != 201 else None
        return response.status_code, code

    with ThreadPoolExecutor(max_workers=50) as pool:
        outcomes = Counter(pool.map(buy, range(50)))
    assert outcomes == {(201, None): 10, (400, "INSUFFICIENT_INVENTORY"): 40}, outcomes
    offer = requests.get(stack.url(f"/api/offers/{offer_id}"), headers=stack.headers, timeout=5).json()
    assert (offer["stockAvailable"], offer["stockReserved"]) == (0, 10)


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{key}="{value}"' in line for key, value in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_aggregate_web_and_worker_processes(stack: Stack) -> None:
    text = requests.get(stack.url("/metrics"), timeout=5).text
    assert _metric(text, "orders_created_total") >= 11  # one order above, ten of the fifty buyers
    assert _metric(text, "orders_http_requests_total", route="/api/orders", status="201") >= 11
    assert _metric(text, "orders_http_requests_total", route="/api/orders", status="400") >= 40
    assert _metric(text, "orders_tasks_total", task="checkout", outcome="succeeded") >= 1  # counted in the worker
    assert _metric(text, "orders_task_duration_seconds_count", task="checkout") >= 1
    for queue in ("payments", "orders", "exports", "maintenance"):
        assert f'orders_queue_depth{{queue="{queue}"}}' in text


def test_the_deployment_made_its_own_secret_and_the_old_default_forges_nothing(stack: Stack) -> None:
    """No SECRET_KEY was set: `make run` generated one under var/ and printed it once; a webhook
    signed with the secret derived from the old built-in default is refused."""
    log = stack.log.read_text()
    assert log.count("generated a random SECRET_KEY in") == 1, log[-3000:]
    var_dir = Path(re.search(r"generated a random SECRET_KEY in (\S+)/secret-key", log).group(1))
    assert len((var_dir / "secret-key").read_text().strip()) >= 32
    old_default = hmac.new(b"dev-insecure-secret-change-me", b"webhook:stripe_1", hashlib.sha256).hexdigest()
    event = {
        "id": "evt_forged_" + secrets.token_hex(4),
        "type": "checkout.session.completed",
        "data": {"object": {"id": "cs_sbx_forged", "payment_status": "paid", "amount_total": 1}},
    }
    body = json.dumps(event).encode()
    forged = requests.post(
        stack.url("/api/payments/webhooks/stripe_1"),
        data=body,
        headers={"Content-Type": "application/json", "Sandbox-Signature": sign(body, f"whsec_{old_default}")},
        timeout=10,
    )
    assert forged.status_code == 400 and forged.json()["error"]["code"] == "INVALID_SIGNATURE", forged.text


def _raw(stack: Stack, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (no client library would send these) and read the whole answer."""
    port = int(stack.base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
    return int(status_line.split()[1]), headers, body


def _assert_envelope(answer: tuple[int, dict[str, str], bytes], status: int, code: str) -> None:
    got_status, headers, body = answer
    assert got_status == status, answer
    assert headers["content-type"] == "application/json", headers
    error = json.loads(body)["error"]
    assert error["code"] == code and error["message"] and error["requestId"] == headers["x-request-id"], error


def test_the_server_answers_oversized_and_malformed_requests_with_the_envelope(stack: Stack) -> None:
    long_line = b"GET /api/orders?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    _assert_envelope(_raw(stack, long_line), 414, "URI_TOO_LONG")
    huge_header = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Huge: " + b"a" * 9000 + b"\r\n\r\n"
    _assert_envelope(_raw(stack, huge_header), 431, "HEADERS_TOO_LARGE")
    many_headers = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: 1\r\n" % n for n in range(101)) + b"\r\n"
    _assert_envelope(_raw(stack, many_headers), 431, "HEADERS_TOO_LARGE")
    _assert_envelope(_raw(stack, b"NOT HTTP AT ALL\r\n\r\n"), 400, "BAD_REQUEST")
    # The same limits through an ordinary client library.
    too_long = requests.get(stack.url("/api/orders?$filter=" + "a" * 9000), headers=stack.headers, timeout=10)
    assert too_long.status_code == 414 and too_long.json()["error"]["code"] == "URI_TOO_LONG"


def _chunked(data: bytes, size: int = 1000):
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_chunked_request_bodies_are_read_and_bounded(stack: Stack) -> None:
    offer_id = _put_offer(stack, stock=5)
    body = json.dumps(_order(offer_id)).encode()
    headers = {**stack.headers, "Content-Type": "application/json"}
    # A generator body makes requests send Transfer-Encoding: chunked, with no Content-Length.
    created = requests.post(stack.url("/api/orders"), data=_chunked(body), headers=headers, timeout=10)
    assert created.request.headers.get("Transfer-Encoding") == "chunked"
    assert created.status_code == 201, created.text
    assert created.json()["totalAmount"] == 99.99

    invalid = requests.post(stack.url("/api/orders"), data=_chunked(b'{"customerId": 5}'), headers=headers, timeout=10)
    assert invalid.status_code == 400, invalid.text
    assert invalid.json()["error"]["code"] == "VALIDATION_ERROR"
    assert {"items"} <= {detail["field"] for detail in invalid.json()["error"]["details"]}, invalid.text

    oversized = b'{"pad": "' + b"a" * (1024 * 1024) + b'"}'
    refused = requests.post(stack.url("/api/orders"), data=_chunked(oversized, 65536), headers=headers, timeout=20)
    assert refused.status_code == 413, refused.text
    assert refused.headers["Content-Type"] == "application/json"
    assert refused.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    refused = requests.post(stack.url("/api/orders"), data=oversized, headers=headers, timeout=20)  # Content-Length
    assert refused.status_code == 413 and refused.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_prefer_wait_answers_the_tasks_outcome_and_replays_it(stack: Stack) -> None:
    offer_id = _put_offer(stack, stock=5)
    order = requests.post(stack.url("/api/orders"), json=_order(offer_id), headers=stack.headers, timeout=10).json()
    payment = {
        "orderId": order["orderId"],
        "action": "process",
        "paymentDetails": {"method": "credit_card", "token": "tok_visa", "amount": 99.99},
    }
    headers = {**stack.headers, "Prefer": "wait=20", "Idempotency-Key": "e2e-wait-" + secrets.token_hex(4)}
    paid = requests.post(stack.url("/api/orders/payment"), json=payment, headers=headers, timeout=30)
    assert paid.status_code == 200, paid.text
    assert paid.headers["Preference-Applied"] == "wait=20"
    assert paid.headers["Content-Location"].startswith("/api/tasks/task_")
    assert "Location" not in paid.headers and "Retry-After" not in paid.headers
    assert paid.headers["X-Request-Id"] and "Prefer" in paid.headers["Vary"]
    assert paid.json()["paymentStatus"] == "completed"
    assert paid.headers["Content-Type"] == "application/json"  # the answer the front waited for, too

    replayed = requests.post(stack.url("/api/orders/payment"), json=payment, headers=headers, timeout=30)
    assert replayed.status_code == 200 and replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json() == paid.json()
    assert replayed.headers["Preference-Applied"] == "wait=20"


def _answered_within_100_ms_of_the_finish(database_url: str, answer: Callable[[], tuple[str, datetime]]) -> None:
    """Three times: ``answer`` waits for a task and returns its id and when its answer arrived;
    each arrival comes within 100 ms after the job's ``finished_at`` (both clocks are this host's;
    the finish time is read from the job's row)."""
    from sqlalchemy import create_engine, select

    from models import Job

    engine = create_engine(database_url)
    try:
        lags = []
        for _ in range(3):
            task_id, answered = answer()
            with engine.connect() as conn:
                finished = conn.execute(select(Job.finished_at).where(Job.id == task_id)).scalar_one()
            lags.append((answered - finished).total_seconds())
        assert min(lags) >= 0 and max(lags) < 0.1, lags
    finally:
        engine.dispose()


def test_prefer_wait_answers_within_100_ms_of_the_job_finishing(stack: Stack, database_url: str) -> None:
    """The waiting request wakes on the job's completion notice, not at a polling interval."""

    def pay() -> tuple[str, datetime]:
        offer_id = _put_offer(stack, stock=5)
        order = requests.post(stack.url("/api/orders"), json=_order(offer_id), headers=stack.headers, timeout=10)
        payment = {
            "orderId": order.json()["orderId"],
            "action": "process",
            "paymentDetails": {"method": "credit_card", "token": "tok_visa", "amount": 99.99},
        }
        paid = requests.post(
            stack.url("/api/orders/payment"), json=payment, headers={**stack.headers, "Prefer": "wait=10"}, timeout=30
        )
        answered = datetime.now(UTC)
        assert paid.status_code == 200, paid.text
        return paid.headers["Content-Location"].rsplit("/", 1)[1], answered

    _answered_within_100_ms_of_the_finish(database_url, pay)


def test_a_long_poll_of_the_task_answers_within_100_ms_of_it_finishing(stack: Stack, database_url: str) -> None:
    """``GET /api/tasks/{id}`` with ``Prefer: wait=N`` is a long poll woken by the completion
    notice: the finished task arrives within 100 ms of the worker's finish; an unknown task is
    still a 404 at once."""

    def place_and_poll() -> tuple[str, datetime]:
        offer_id = _put_offer(stack, stock=5)
        order = requests.post(stack.url("/api/orders"), json=_order(offer_id), headers=stack.headers, timeout=10)
        task_id = order.json()["taskId"]
        task = requests.get(
            stack.url(f"/api/tasks/{task_id}"), headers={**stack.headers, "Prefer": "wait=10"}, timeout=30
        )
        answered = datetime.now(UTC)
        assert task.status_code == 200, task.text
        assert task.json()["state"] == "succeeded", task.text
        assert task.headers["Preference-Applied"] == "wait=10" and "Retry-After" not in task.headers
        assert task.headers["Content-Type"] == "application/json" and "Prefer" in task.headers["Vary"]
        return task_id, answered

    _answered_within_100_ms_of_the_finish(database_url, place_and_poll)

    unknown = requests.get(
        stack.url("/api/tasks/task_01J00000000000000000000000"), headers={**stack.headers, "Prefer": "wait=5"}
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "TASK_NOT_FOUND", unknown.text


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _descendants(root: int) -> set[int]:
    table = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True, check=True).stdout
    children: dict[int, list[int]] = {}
    for line in table.splitlines():
        pid, ppid = map(int, line.split())
        children.setdefault(ppid, []).append(pid)
    found, stack = set(), [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_ctrl_c_stops_everything(stack: Stack) -> None:
    redis_port = int(re.search(r"redis://127\.0\.0\.1:(\d+)", stack.log.read_text()).group(1))
    web_port = int(stack.base.rsplit(":", 1)[1])
    assert _listening(redis_port) and _listening(web_port)
    started = _descendants(stack.process.pid)
    assert len(started) >= 5, started  # redis, honcho, gunicorn (+ workers), celery worker (+ pool), beat
    stack.process.send_signal(signal.SIGINT)
    stack.process.wait(60)
    wait_for(lambda: not _listening(web_port) and not _listening(redis_port), timeout=10, what="ports to close")
    wait_for(lambda: not any(_alive(pid) for pid in started), timeout=15, what="every child process to exit")
