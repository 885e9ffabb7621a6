"""The floor for the HTTP workloads: the bare stack doing the same work with no application logic.

``POST /api/orders`` parses the same JSON (floats as ``Decimal``), inserts one order row and one
item row with SQLAlchemy Core into the service's own tables in one transaction, sends the same
Celery message (``send_task`` of the checkout task to the ``payments`` queue) and answers 201.
``GET /api/orders/{id}`` selects the order and its items by id on an ``AUTOCOMMIT`` engine.
No auth, no validation, no stock reservation, no history or job rows, no idempotency: what the
service spends beyond this is the price of those, which is what the ratio shows.

The paths are the service's, so the same wrk scripts drive both. Run under the same gunicorn
settings as the service: ``gunicorn --config python:config.gunicorn 'bench.floor_app:get_app()'``.
"""

from __future__ import annotations

import json
import os
import pickle
import secrets
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import falcon
import msgspec
from celery import Celery
from sqlalchemy import Engine, bindparam, create_engine, func, insert, select, update

from bench.floor_celery import QUEUE as FLOOR_QUEUE
from bench.floor_celery import TASK as FLOOR_TASK
from models import Offer, Order, OrderItem
from services.jobs.kinds import CHECKOUT

CHECKOUT_TASK, CHECKOUT_QUEUE = CHECKOUT.task_name, CHECKOUT.queue  # the same message the service sends

_orders = Order.__table__
_items = OrderItem.__table__
_encoder = msgspec.json.Encoder(decimal_format="number")


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(13)}"


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_offers = Offer.__table__
# The reservation floor's one addition: the service's conditional stock UPDATE, last before COMMIT.
_RESERVE = (
    update(_offers)
    .where(_offers.c.id == bindparam("offer"), _offers.c.stock_available >= bindparam("wanted"))
    .values(
        stock_available=_offers.c.stock_available - bindparam("wanted"),
        stock_reserved=_offers.c.stock_reserved + bindparam("wanted"),
    )
)


class FloorOrders:
    def __init__(self, write: Engine, celery: Celery, read: Engine, *, reserve: bool = False) -> None:
        self.write = write
        self.celery = celery
        self.read = read
        self.reserve = reserve

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The list's floor: a page of 20 orders of one status, newest first, its items and the count."""
        status = req.get_param("status") or "pending_payment"
        with self.read.connect() as conn:
            page = (
                conn.execute(
                    select(_orders)
                    .where(_orders.c.status == status)
                    .order_by(_orders.c.created_at.desc(), _orders.c.id.desc())
                    .limit(21)
                )
                .mappings()
                .all()[:20]
            )
            count = conn.execute(select(func.count()).select_from(_orders).where(_orders.c.status == status)).scalar()
            items: dict[str, list[dict[str, Any]]] = {row["id"]: [] for row in page}
            if items:
                for item in conn.execute(select(_items).where(_items.c.order_id.in_(list(items)))).mappings():
                    items[item["order_id"]].append(
                        {"id": item["id"], "offerId": item["offer_id"], "price": item["price"]}
                    )
        body = {
            "value": [{"id": row["id"], "status": row["status"], "items": items[row["id"]]} for row in page],
            "count": count,
        }
        resp.content_type = falcon.MEDIA_JSON
        resp.data = _encoder.encode(body)

    def place(self, req: falcon.Request) -> tuple[str, Decimal]:
        """Parse the body and insert the order and its item in one transaction; (order id, total)."""
        body = json.loads(req.bounded_stream.read(), parse_float=Decimal)
        item = body["items"][0]
        now = datetime.now(UTC)
        order_id, item_id = _id("ord"), _id("item")
        total = Decimal(item["price"]) * int(item["quantity"])
        with self.write.begin() as conn:
            conn.execute(
                insert(_orders),
                {
                    "id": order_id,
                    "customer_id": body["customerId"],
                    "status": "pending_payment",
                    "payment_status": "unpaid",
                    "payment_method": body["paymentMethod"],
                    "payment_gateway_id": body["paymentGatewayId"],
                    "total_amount": total,
                    "currency": "USD",
                    "item_count": 1,
                    "version": 1,
                    "hold_expires_at": now + timedelta(minutes=30),
                    "created_at": now,
                    "updated_at": now,
                },
            )
            conn.execute(
                insert(_items),
                {
                    "id": item_id,
                    "order_id": order_id,
                    "position": 0,
                    "offer_id": item["offerId"],
                    "quantity": int(item["quantity"]),
                    "price": Decimal(item["price"]),
                    "status": "pending",
                },
            )
            if (
                self.reserve
                and conn.execute(_RESERVE, {"offer": item["offerId"], "wanted": int(item["quantity"])}).rowcount != 1
            ):
                raise falcon.HTTPBadRequest(title="INSUFFICIENT_INVENTORY")
        return order_id, total

    def answer(self, resp: falcon.Response, order_id: str, total: Decimal, task_id: str) -> None:
        resp.status = falcon.HTTP_201
        resp.content_type = falcon.MEDIA_JSON
        resp.data = _encoder.encode(
            {"orderId": order_id, "status": "pending_payment", "totalAmount": total, "taskId": task_id}
        )

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        order_id, total = self.place(req)
        task_id = _id("task")
        self.celery.send_task(CHECKOUT_TASK, args=[task_id], task_id=task_id, queue=CHECKOUT_QUEUE)
        self.answer(resp, order_id, total, task_id)

    def on_post_round_trip(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The task round trip's floor: the same placement, then a bare no-op task
        (:mod:`bench.floor_celery`) the client awaits on the Redis result backend."""
        order_id, total = self.place(req)
        task_id = _id("task")
        self.celery.send_task(FLOOR_TASK, args=[order_id], task_id=task_id, queue=FLOOR_QUEUE)
        self.answer(resp, order_id, total, task_id)


class FloorOrder:
    def __init__(self, read: Engine) -> None:
        self.read = read

    def on_get(self, req: falcon.Request, resp: falcon.Response, order_id: str) -> None:
        with self.read.connect() as conn:
            order = conn.execute(select(_orders).where(_orders.c.id == order_id)).mappings().first()
            if order is None:
                raise falcon.HTTPNotFound()
            items = conn.execute(
                select(_items).where(_items.c.order_id == order_id).order_by(_items.c.position)
            ).mappings()
            body: dict[str, Any] = {
                "id": order["id"],
                "customerId": order["customer_id"],
                "status": order["status"],
                "items": [
                    {"id": i["id"], "offerId": i["offer_id"], "quantity": i["quantity"], "price": i["price"]}
                    for i in items
                ],
                "totalAmount": order["total_amount"],
                "currency": order["currency"],
                "createdAt": _iso(order["created_at"]),
            }
        resp.content_type = falcon.MEDIA_JSON
        resp.data = _encoder.encode(body)


class FloorReplay:
    """The HTTP floor of a list request: the exact statements the service issued for it (captured
    with their parameters by ``bench.list_orders``), replayed through a bare driver connection,
    each row answered as a JSON object keyed by its column names. HTTP, the SQL and the encoding
    of the same rows; no auth, no query parsing, no rendering rules."""

    def __init__(self, read: Engine, scenarios: dict[str, list[tuple[str, Any]]]) -> None:
        self.read = read
        self.scenarios = scenarios

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        statements = self.scenarios.get(name)
        if statements is None:
            raise falcon.HTTPNotFound()
        value: list[dict[str, Any]] = []
        with self.read.connect() as conn:
            cursor = conn.connection.driver_connection.cursor()  # the bare DBAPI cursor
            for statement, parameters in statements:
                cursor.execute(statement, parameters)
                names = [column[0] for column in cursor.description or ()]
                value += [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
            cursor.close()
        resp.content_type = falcon.MEDIA_JSON
        resp.data = _encoder.encode({"value": value})


def create_app(database_url: str, redis_url: str, *, pool_size: int = 8, reserve: bool = False) -> falcon.App:
    """Engines and the Celery app are built here, per gunicorn worker, never at import time."""
    write = create_engine(database_url, pool_size=pool_size, max_overflow=8)
    read = create_engine(database_url, pool_size=pool_size, max_overflow=8, isolation_level="AUTOCOMMIT")
    celery = Celery("floor", broker=redis_url, set_as_current=False)
    celery.conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True)
    app = falcon.App()
    orders = FloorOrders(write, celery, read, reserve=reserve)
    app.add_route("/api/orders", orders)
    app.add_route("/floor/round-trip", orders, suffix="round_trip")
    app.add_route("/api/orders/{order_id}", FloorOrder(read))
    replay_file = os.environ.get("FLOOR_REPLAY_FILE")
    if replay_file:
        with open(replay_file, "rb") as source:
            app.add_route("/floor/replay/{name}", FloorReplay(read, pickle.load(source)))
    return app


def get_app() -> falcon.App:
    """Gunicorn entry point: the same ``DATABASE_URL`` and ``REDIS_URL`` the service reads."""
    return create_app(os.environ["DATABASE_URL"], os.environ["REDIS_URL"])


def get_reserving_app() -> falcon.App:
    """The reservation floor: the floor plus the same conditional stock UPDATE the service runs,
    so the price of the hot row and the price of the service's own code show apart."""
    return create_app(os.environ["DATABASE_URL"], os.environ["REDIS_URL"], reserve=True)
