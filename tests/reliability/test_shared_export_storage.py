"""Two hosts, one export store: an export built by a worker on host A is downloaded from host B's
web process, whose own export folder stays empty.

Real processes: a Celery worker (``exports`` queue) with ``EXPORT_DIR`` on "host A" and gunicorn
(the Procfile's web line) with ``EXPORT_DIR`` on "host B", both with
``EXPORT_STORAGE_URL=s3://…`` pointed at moto's S3 server on a local port, sharing the database
and a Redis of the test's own. The client talks HTTP to host B only.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

import requests

from tests.conftest import auth, unique_customer
from tests.integration.test_exports import make_orders
from tests.reliability.conftest import wait_ready
from tests.support.polling import wait_for
from tests.support.processes import start_ready_worker, start_web, stop_process
from workers.embedded_redis import EmbeddedRedis, free_port


def test_an_export_built_on_one_host_downloads_from_another(settings, deps, admin, s3_standin, tmp_path) -> None:
    redis = EmbeddedRedis(tmp_path / "redis")
    shared = settings.with_(redis_url=redis.start(), **s3_standin.settings_changes(s3_standin.new_bucket()))
    host_a, host_b = tmp_path / "host-a", tmp_path / "host-b"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    processes = []
    try:
        processes.append(
            start_ready_worker(shared.with_(export_dir=host_a), tmp_path / "worker-a.log", queues="exports", name="a")
        )
        processes.append(start_web(shared.with_(export_dir=host_b), port, tmp_path / "web-b.log", workers=1))
        wait_ready(base)
        customer = unique_customer()
        with deps.db.transaction() as session:
            session.add_all(make_orders(customer, 120, text_fields=False))
        headers = auth(admin)
        accepted = requests.post(
            f"{base}/api/orders/export",
            json={"format": "csv", "filters": {"customerId": customer}},
            headers=headers,
            timeout=10,
        )
        assert accepted.status_code == 202, accepted.text

        def finished() -> dict | None:
            task = requests.get(f"{base}/api/tasks/{accepted.json()['taskId']}", headers=headers, timeout=10).json()
            return task if task["state"] in ("succeeded", "failed") else None

        task = wait_for(finished, timeout=40, interval=0.2, what="the export on host A")
        assert task["state"] == "succeeded", task
        result = task["result"]
        link = urlsplit(result["downloadUrl"])
        url = f"{base}{link.path}?{link.query}"

        whole = requests.get(url, timeout=10)
        assert whole.status_code == 200, whole.text
        assert hashlib.sha256(whole.content).hexdigest() == result["sha256"]
        assert len(whole.content) == result["bytes"] and whole.content.count(b"\r\n") == 121
        part = requests.get(url, headers={"Range": "bytes=100-199"}, timeout=10)
        assert part.status_code == 206 and part.content == whole.content[100:200]
        assert part.headers["Content-Range"] == f"bytes 100-199/{result['bytes']}"
        assert requests.head(url, timeout=10).headers["Content-Length"] == str(result["bytes"])
    finally:
        for process in processes:
            stop_process(process)
        redis.stop()

    # Host B served it without a file of its own; host A kept nothing but its (empty) scratch folder.
    assert not host_b.exists() or not list(host_b.iterdir())
    assert not list(host_a.iterdir())
