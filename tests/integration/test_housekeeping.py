"""Housekeeping deletes expired idempotency records and finished jobs, and nothing else."""

from __future__ import annotations

from datetime import timedelta

from models import IdempotencyRecord, Job
from models.types import utcnow
from services import idempotency
from services.housekeeping import purge_expired
from tests.conftest import unique_customer
from tests.integration.helpers import brief_order, wait_task


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
