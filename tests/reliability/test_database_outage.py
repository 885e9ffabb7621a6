"""The database unreachable for a few seconds: 503 with Retry-After and the error envelope,
never a 500 or a stack trace, and the service resumes by itself."""

from __future__ import annotations

import os
import time

import pytest
from sqlalchemy import make_url

from tests.conftest import auth
from tests.reliability.conftest import wait_ready
from tests.reliability.load import LoadRun, create_orders
from tests.support.polling import wait_for
from tests.support.processes import start_web, stop_process
from tests.support.tcp_proxy import CuttableProxy
from workers.embedded_redis import free_port

pytestmark = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgresql"),
    reason="a database server to lose: runs on PostgreSQL (SQLite is a local file)",
)


def test_database_outage_answers_503_then_recovers(settings, database_url, admin, make_offer, tmp_path):
    url = make_url(database_url)
    proxy = CuttableProxy(url.host or "127.0.0.1", url.port or 5432)
    proxied = settings.with_(database_url=url.set(host="127.0.0.1", port=proxy.port).render_as_string(False))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = start_web(proxied, port, tmp_path / "web.log")
    run = LoadRun()
    try:
        wait_ready(base)
        offer = make_offer(stock=100_000)
        threads = create_orders(base, auth(admin), offer, run, threads=4)
        wait_for(lambda: run.count(lambda r: r.status == 201) >= 20, timeout=30, what="orders before the outage")
        proxy.cut()
        outage_started = time.monotonic()
        wait_for(lambda: run.count(lambda r: r.status == 503) >= 20, timeout=30, what="503s during the outage")
        wait_for(lambda: time.monotonic() - outage_started >= 3, timeout=10, what="a few seconds of outage")
        proxy.restore()
        resumed_at = run.count(lambda r: True)
        wait_for(
            lambda: any(r.status == 201 for r in run.results[resumed_at:]), timeout=30, what="orders accepted again"
        )
        run.stop.set()
        for thread in threads:
            thread.join(20)
    finally:
        run.stop.set()
        stop_process(web)
        proxy.close()

    statuses = {r.status for r in run.results}
    assert statuses <= {201, 503}, statuses
    unavailable = [r for r in run.results if r.status == 503]
    assert unavailable
    for response in unavailable:
        assert response.retry_after == "5"
        assert '"code":"SERVICE_UNAVAILABLE"' in response.body and "Traceback" not in response.body
