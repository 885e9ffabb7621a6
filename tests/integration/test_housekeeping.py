"""Housekeeping deletes expired export files (with their rows and jobs), idempotency records and
finished jobs, and nothing else."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from models import Export, IdempotencyRecord, Job
from models.types import utcnow
from services.access import idempotency
from services.maintenance.housekeeping import purge_expired
from tests.conftest import unique_customer
from tests.integration.helpers import brief_order, wait_task
from tests.support.polling import wait_for
from workers.app import create_celery_app


def test_purges_only_what_has_expired(client, admin, admin_headers, make_offer, deps, worker):
    fresh = idempotency.claim(deps.db, admin.id, "fresh-" + unique_customer(), "f" * 64, timedelta(hours=1))
    stale = idempotency.claim(deps.db, admin.id, "stale-" + unique_customer(), "f" * 64, timedelta(hours=1))
    created = client.simulate_post(
        "/api/orders", json=brief_order(make_offer(), unique_customer()), headers=admin_headers
    )
    wait_task(client, created.json["taskId"], admin_headers)
    queued = client.simulate_post(
        "/api/orders", json=brief_order(make_offer(), unique_customer()), headers=admin_headers
    )
    with deps.db.transaction() as session:
        session.get(IdempotencyRecord, stale.record_id).expires_at = utcnow() - timedelta(seconds=1)
        finished = session.get(Job, created.json["taskId"])
        assert finished.expires_at is not None  # finishing sets the retention
        finished.expires_at = utcnow() - timedelta(seconds=1)

    purge_expired(deps.db)
    with deps.db.reader() as session:
        assert session.get(IdempotencyRecord, stale.record_id) is None
        assert session.get(IdempotencyRecord, fresh.record_id) is not None
        assert session.get(Job, created.json["taskId"]) is None
        assert session.get(Job, queued.json["taskId"]) is not None
    assert purge_expired(deps.db, now=utcnow() - timedelta(days=1)).jobs == 0


def _export(client, headers) -> dict:
    accepted = client.simulate_post(
        "/api/orders/export", json={"format": "csv", "filters": {"customerId": unique_customer()}}, headers=headers
    )
    assert accepted.status_code == 202, accepted.text
    task = wait_task(client, accepted.json["taskId"], headers)
    assert task["state"] == "succeeded", task
    return task


def test_the_housekeeping_task_deletes_expired_exports_with_their_files_and_jobs(
    client, admin_headers, deps, settings, worker
):
    expired, fresh = _export(client, admin_headers), _export(client, admin_headers)
    export_dir = Path(settings.export_dir)
    expired_file = export_dir / f"{expired['result']['exportId']}.csv"
    fresh_file = export_dir / f"{fresh['result']['exportId']}.csv"
    assert expired_file.is_file() and fresh_file.is_file()
    with deps.db.transaction() as session:
        session.get(Export, expired["result"]["exportId"]).expires_at = utcnow() - timedelta(seconds=1)
    # Leftovers no row names: an old one (a killed attempt long ago) and one being written now.
    stale_leftover, live_part = export_dir / "exp_killed.1-abcd.part", export_dir / "exp_building.1-abcd.part"
    stale_leftover.write_text("partial")
    live_part.write_text("partial")
    long_ago = time.time() - settings.export_ttl_seconds - 60
    os.utime(stale_leftover, (long_ago, long_ago))

    create_celery_app(settings).send_task("maintenance.housekeeping", queue="maintenance")

    def export_gone() -> bool:
        with deps.db.reader() as session:
            return session.get(Export, expired["result"]["exportId"]) is None

    wait_for(export_gone, timeout=20, what="the housekeeping task to delete the expired export")
    with deps.db.reader() as session:
        assert session.get(Job, expired["taskId"]) is None
        assert session.get(Export, fresh["result"]["exportId"]) is not None
        assert session.get(Job, fresh["taskId"]) is not None
    assert not expired_file.exists() and fresh_file.is_file()
    assert not stale_leftover.exists() and live_part.exists()
    link = urlsplit(expired["result"]["downloadUrl"])
    assert client.simulate_get(link.path, query_string=link.query).status_code == 404
    live_part.unlink()
