"""Request builders shared by the integration tests."""

from __future__ import annotations

from typing import Any

from falcon import testing

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
