"""The API-key cache: no database round trip per request, and a key revoked elsewhere stops
working within the stated bound (``API_KEY_CACHE_SECONDS``)."""

from __future__ import annotations

import dataclasses
import time

import pytest
from falcon import testing
from sqlalchemy import event

from api.app import create_app
from services.access.keys import KeyCache, issue_key, revoke_key
from services.kernel.errors import Unauthorized
from tests.conftest import auth
from tests.support.polling import wait_for

TTL = 1.0


def test_a_key_revoked_by_another_process_is_refused_within_the_bound(deps, settings):
    short = settings.with_(api_key_cache_seconds=TTL)
    app = create_app(short, dataclasses.replace(deps, settings=short, keys=KeyCache(TTL)))
    client = testing.TestClient(app)
    key = issue_key(deps.db, "ops")
    assert client.simulate_get("/api/offers/none", headers=auth(key)).status_code == 404  # cached now
    revoke_key(deps.db, key.id)  # as another host would: this process's cache is not told
    revoked_at = time.monotonic()
    wait_for(
        lambda: client.simulate_get("/api/offers/none", headers=auth(key)).status_code == 401,
        timeout=TTL + 2,
        interval=0.05,
        what="the revoked key to be refused",
    )
    assert time.monotonic() - revoked_at <= TTL + 0.5


def test_a_cached_key_costs_no_database_round_trip(deps, settings):
    app = create_app(settings, dataclasses.replace(deps, keys=KeyCache(60)))
    client = testing.TestClient(app)
    key = issue_key(deps.db, "ops")
    lookups: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001, PLR0913
        if "api_keys" in statement:
            lookups.append(statement)

    event.listen(deps.db.read_engine, "before_cursor_execute", count)
    try:
        for _ in range(20):
            assert client.simulate_get("/api/offers/none", headers=auth(key)).status_code == 404
    finally:
        event.remove(deps.db.read_engine, "before_cursor_execute", count)
    assert len(lookups) == 1


def test_cached_keys_expire_and_unknown_keys_are_not_cached(deps):
    now = [0.0]
    cache = KeyCache(5, clock=lambda: now[0])
    key = issue_key(deps.db, "admin")
    assert cache.authenticate(deps.db, key.key).key_id == key.id
    revoke_key(deps.db, key.id)
    assert cache.authenticate(deps.db, key.key).key_id == key.id  # within the bound: still cached
    now[0] = 5.01
    with pytest.raises(Unauthorized):
        cache.authenticate(deps.db, key.key)
    with pytest.raises(Unauthorized):
        cache.authenticate(deps.db, "sk_unknown")
    assert len(cache._entries) == 0  # the refused keys were not kept
