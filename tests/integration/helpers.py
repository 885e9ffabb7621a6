"""Request builders shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from falcon import testing
from sqlalchemy import event

from tests.support.polling import wait_for


def brief_order(offer_id: str, customer_id: str, *, quantity: int = 1, price: float | str = 99.99) -> dict[str, Any]:
    """The brief's create-order request, pointed at a test offer and customer."""
    return {
        "customerId": customer_id,
        "items": [{"offerId": offer_id, "quantity": quantity, "price": price}],
        "paymentMethod": "credit_card",
        "paymentGatewayId": "stripe_1",
    }


def wait_task(client: testing.TestClient, task_id: str, headers: dict[str, str], timeout: float = 30) -> dict[str, Any]:
    """Poll ``GET /api/tasks/{id}`` until the task has finished."""

    def finished() -> dict[str, Any] | None:
        body = client.simulate_get(f"/api/tasks/{task_id}", headers=headers).json
        return body if body["state"] in ("succeeded", "failed") else None

    return wait_for(finished, timeout=timeout, what=f"task {task_id} to finish")


def error_code(result: testing.Result) -> str:
    return result.json["error"]["code"]


def brief_payment(order_id: str, *, token: str = "tok_visa", amount: Any = 99.99, action: str = "process") -> dict:
    """The brief's payment request for ``order_id``."""
    return {
        "orderId": order_id,
        "action": action,
        "paymentDetails": {"method": "credit_card", "token": token, "amount": amount},
    }


def place(
    client: testing.TestClient,
    headers: dict[str, str],
    offer_id: str,
    *,
    gateway: str = "stripe_1",
    quantity: int = 1,
    price: Any = 99.99,
    customer_id: str | None = None,
) -> dict[str, Any]:
    """Create an order through the API; returns the create response body."""
    from tests.conftest import unique_customer

    request = brief_order(offer_id, customer_id or unique_customer(), quantity=quantity, price=price)
    request["paymentGatewayId"] = gateway
    result = client.simulate_post("/api/orders", json=request, headers=headers)
    assert result.status_code == 201, result.text
    return result.json


def sandbox_charges(db: Any, order_id: str) -> list[Any]:
    """Charges the sandbox gateway booked for ``order_id`` (declined attempts excluded)."""
    from sqlalchemy import select

    from models import SandboxLedgerEntry

    with db.reader() as session:
        return list(
            session.scalars(
                select(SandboxLedgerEntry).where(
                    SandboxLedgerEntry.reference == order_id,
                    SandboxLedgerEntry.kind == "charge",
                    SandboxLedgerEntry.status != "declined",
                )
            )
        )


def order_row(db: Any, order_id: str) -> Any:
    from models import Order

    with db.reader() as session:
        return session.get(Order, order_id)


def history_of(db: Any, order_id: str) -> list[tuple[str | None, str]]:
    from sqlalchemy import select

    from models import StatusHistory

    with db.reader() as session:
        rows = session.scalars(
            select(StatusHistory).where(StatusHistory.order_id == order_id).order_by(StatusHistory.id)
        )
        return [(row.from_status, row.to_status) for row in rows]


def payments_of(db: Any, order_id: str, *, checkout: bool = False) -> list[Any]:
    """The order's payment attempts (its hosted checkout session's row only when asked)."""
    from sqlalchemy import select

    from models import Payment

    query = select(Payment).where(Payment.order_id == order_id).order_by(Payment.created_at)
    if not checkout:
        query = query.where(Payment.action != "checkout")
    with db.reader() as session:
        return list(session.scalars(query))


_WRITES = ("INSERT", "UPDATE", "DELETE")


@contextmanager
def no_writes(db: Any) -> Iterator[list[str]]:
    """Fail if this process sends an INSERT, UPDATE or DELETE through ``db`` inside the block.

    Listens on both engines of the app under test, so it sees exactly the statements the
    in-process requests issued (never another process's), without comparing row counts.
    """
    written: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip()[:6].upper() in _WRITES:
            written.append(statement)

    engines = (db.write_engine, db.read_engine)
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield written
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)
    assert not written, written
