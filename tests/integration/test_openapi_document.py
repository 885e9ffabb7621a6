"""The served OpenAPI document says what the tools clients use need to know (issue 13's list):
plain component names, money that validators accept, timestamps and statuses typed, headers
declared, every operation's statuses with bodies, typed task results."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator


@pytest.fixture(scope="module")
def doc(app) -> dict[str, Any]:  # noqa: ANN001
    from falcon import testing

    return testing.TestClient(app).simulate_get("/api/openapi.json").json


def schema(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return doc["components"]["schemas"][name]


def validator(doc: dict[str, Any], name: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": doc["components"]})


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, methods in doc["paths"].items() for method, op in methods.items()]


def test_component_names_are_plain_identifiers(doc):
    assert all(name.isidentifier() for name in doc["components"]["schemas"]), list(doc["components"]["schemas"])
    assert "ValidationError" not in doc["components"]["schemas"]  # spectree's 422 model is never sent


def test_money_is_a_number_every_two_decimal_value_validates(doc):
    assert "multipleOf" not in json.dumps(doc)
    amounts = [2499.99, 0.07, 19.99, 9999999999.99, 0.1 + 0.2, 1e-2]
    for value in amounts:
        item = {"id": "item_1", "offerId": "o", "quantity": 1, "price": value, "status": "pending"}
        assert not list(validator(doc, "OrderItemOut").iter_errors(item)), value
    assert list(validator(doc, "OrderItemOut").iter_errors({**item, "price": "19.99"}))  # never a string
    price = schema(doc, "OrderItemOut")["properties"]["price"]
    assert price["type"] == "number" and price["x-decimal-places"] == 2 and "two decimal places" in price["description"]
    assert schema(doc, "ItemsOut")["properties"]["totalAmount"]["type"] == "number"


def test_timestamps_are_date_time_and_statuses_are_enumerations(doc):
    order = schema(doc, "OrderOut")["properties"]
    assert order["createdAt"]["format"] == "date-time" and order["updatedAt"]["format"] == "date-time"
    assert order["status"]["enum"] == ["pending_payment", "processing", "shipped", "completed", "cancelled", "refunded"]
    assert "completed" in order["paymentStatus"]["enum"] and "paid" not in order["paymentStatus"]["enum"]
    assert schema(doc, "OrderItemOut")["properties"]["status"]["enum"] == [
        "pending",
        "verified",
        "fulfilled",
        "cancelled",
    ]
    summary = schema(doc, "OrderSummaryOut")
    assert "required" not in summary  # $select may leave any field out, but none is ever null
    assert all("null" not in json.dumps(prop) for prop in summary["properties"].values())


def test_headers_are_declared(doc):
    def headers(method: str, path: str) -> set[str]:
        return {p["name"] for p in doc["paths"][path][method]["parameters"] if p["in"] == "header"}

    assert {"Idempotency-Key", "Prefer"} <= headers("post", "/api/orders/payment")
    assert "Idempotency-Key" in headers("post", "/api/orders")
    assert "If-Match" in headers("patch", "/api/orders/{order_id}/status")
    assert {"Range", "If-Range"} <= headers("get", "/api/exports/{export_id}/file")
    created = doc["paths"]["/api/orders"]["post"]["responses"]["201"]["headers"]
    assert {"Location", "ETag", "X-Request-Id", "Idempotent-Replayed"} <= set(created)


def test_every_operation_declares_its_answers_and_the_envelope_for_the_rest(doc):
    for method, path, op in operations(doc):
        responses = op["responses"]
        assert responses["default"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorOut"
        }
        for code, response in responses.items():
            assert response["description"], (method, path, code)
            assert "X-Request-Id" in response["headers"], (method, path, code)
    payment = doc["paths"]["/api/orders/payment"]["post"]["responses"]
    assert set(payment) >= {"200", "202", "402"}
    assert payment["402"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorOut"}
    assert payment["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/PaymentResultOut"}
    export = doc["paths"]["/api/orders/export"]["post"]["responses"]["200"]["content"]["application/json"]
    assert export["schema"] == {"$ref": "#/components/schemas/ExportResultOut"}
    file = doc["paths"]["/api/exports/{export_id}/file"]["get"]["responses"]["200"]["content"]
    assert set(file) == {"text/csv", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
    assert set(doc["paths"]["/api/orders/$count"]["get"]["responses"]["200"]["content"]) == {"text/plain"}


def test_each_task_type_has_its_typed_result(doc):
    task = schema(doc, "TaskOut")
    assert task["discriminator"]["propertyName"] == "type"
    mapping = task["discriminator"]["mapping"]
    assert set(mapping) == {"checkout", "payment", "export", "bulk_cancel", "cancel_order", "close_checkout", "webhook"}
    payment_task = schema(doc, "PaymentTaskOut")["properties"]["result"]
    assert {"$ref": "#/components/schemas/PaymentResultOut"} in payment_task["anyOf"]
    results = schema(doc, "BulkCancelOut")["properties"]["results"]["items"]["anyOf"]
    assert results == [
        {"$ref": "#/components/schemas/BulkCancelledOut"},
        {"$ref": "#/components/schemas/BulkCancelFailedOut"},
    ]
