"""The request id a client sent reaches every history row the tasks of that request write."""

from __future__ import annotations

from sqlalchemy import select

from models import StatusHistory
from tests.integration.helpers import brief_payment, place, wait_task


def history_request_ids(db, order_id: str) -> list[tuple[str | None, str, str | None]]:
    with db.reader() as session:
        rows = session.scalars(
            select(StatusHistory).where(StatusHistory.order_id == order_id).order_by(StatusHistory.id)
        )
        return [(row.from_status, row.to_status, row.request_id) for row in rows]


def test_a_payment_tasks_history_row_carries_the_payment_requests_id(client, admin_headers, make_offer, deps, worker):
    order = place(client, admin_headers, make_offer())
    paid = client.simulate_post(
        "/api/orders/payment",
        json=brief_payment(order["orderId"]),
        headers={**admin_headers, "Prefer": "wait=20", "X-Request-Id": "req-pay-42"},
    )
    assert paid.status_code == 200, paid.text
    assert history_request_ids(deps.db, order["orderId"])[-1] == ("pending_payment", "processing", "req-pay-42")


def test_a_bulk_cancel_childs_history_row_carries_the_bulk_requests_id(client, admin_headers, make_offer, deps, worker):
    order = place(client, admin_headers, make_offer())
    accepted = client.simulate_post(
        "/api/orders/bulk-cancel",
        json={"orderIds": [order["orderId"]], "reason": "test"},
        headers={**admin_headers, "X-Request-Id": "req-bulk-7"},
    )
    assert accepted.status_code == 202, accepted.text
    assert wait_task(client, accepted.json["taskId"], admin_headers)["state"] == "succeeded"
    assert history_request_ids(deps.db, order["orderId"])[-1] == ("pending_payment", "cancelled", "req-bulk-7")
