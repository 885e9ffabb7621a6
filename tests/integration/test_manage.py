"""The operator CLI: migrate, create-key, seed-demo."""

from __future__ import annotations

import json
import subprocess
import sys

from config.settings import PROJECT_ROOT
from services.access.keys import authenticate
from services.orders.offers import get_offer
from tests.support.processes import settings_env


def _manage(settings, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_ROOT,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_migrate_is_repeatable(settings):
    assert "migrated" in _manage(settings, "migrate")


def test_create_key_prints_a_working_key_once(settings, deps):
    printed = json.loads(_manage(settings, "create-key", "--role", "customer", "--customer", "cust_cli"))
    assert printed["role"] == "customer" and printed["customerId"] == "cust_cli"
    principal = authenticate(deps.db, printed["key"])
    assert (principal.role, principal.customer_id) == ("customer", "cust_cli")


def test_seed_demo_creates_the_brief_offer(settings, deps):
    _manage(settings, "seed-demo")
    offer = get_offer(deps.db, "offer_456")
    assert str(offer.price) == "99.99" and offer.stock_available > 0
