"""A client generated from the served OpenAPI document, as an integrating developer would make it
(``openapi-python-client``, into a temporary folder, offline), drives the whole flow over HTTP and
nothing else: create, poll the task, pay, get, list with a filter and follow ``nextLink``, change
the status with ``If-Match``, cancel an item, bulk cancel, export and download.

The generator must not warn (a warning means part of the document was dropped from the client),
and every response the client receives is also checked against the document
(:mod:`tests.support.contract`), as the suite's in-process responses are.
"""

from __future__ import annotations

import importlib
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from falcon import testing

from tests.conftest import unique_customer
from tests.support.polling import wait_for

PACKAGE = "orders_api_client"
# literal_enums: enumerations become Literal types, so the flow below passes plain strings.
GENERATOR_CONFIG = {"package_name_override": PACKAGE, "literal_enums": True}


@pytest.fixture(scope="module")
def served_document(app) -> dict[str, Any]:  # noqa: ANN001
    result = testing.TestClient(app).simulate_get("/api/openapi.json")
    assert result.status_code == 200
    return result.json


@pytest.fixture(scope="module")
def generation(served_document: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Generate the client into a temporary folder; returns (folder holding the package, output)."""
    folder = tmp_path_factory.mktemp("generated")
    document = folder / "openapi.json"
    document.write_text(json.dumps(served_document))
    config = folder / "config.json"
    config.write_text(json.dumps(GENERATOR_CONFIG))
    # Its post-hooks format the code with ruff, which is installed beside this interpreter.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(document),
            "--output-path",
            str(folder / PACKAGE),
            "--meta",
            "none",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=folder,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    return folder, output


@pytest.fixture(scope="module")
def api(generation: tuple[Path, str]) -> ModuleType:
    folder, _ = generation
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(folder))


def test_the_generator_reads_the_whole_document_without_a_warning(generation, served_document):
    _, output = generation
    # One line, "Generating <folder>": anything else is a warning about a part of the document it
    # could not use (and left out of the client), or a failed post-hook.
    [line] = [line for line in output.splitlines() if line.strip()]
    assert line.startswith("Generating ") and line.endswith(PACKAGE), output
    names = list(served_document["components"]["schemas"])
    assert all(name.isidentifier() for name in names), [name for name in names if not name.isidentifier()]


def _module(api: ModuleType, name: str) -> Any:
    return importlib.import_module(f"{api.__name__}.{name}")


def test_a_generated_client_drives_the_whole_flow(api, contract, live_server, admin, worker):
    before = contract.by_operation.copy()

    def check(response: httpx.Response) -> None:
        response.read()
        request = response.request
        contract.check(request.method, request.url.path, response.status_code, response.headers, response.content, None)

    hooks = {"event_hooks": {"response": [check]}}
    timeout = httpx.Timeout(60.0)
    staff = _module(api, "client").AuthenticatedClient(
        base_url=live_server.url, token=admin.key, timeout=timeout, httpx_args=hooks
    )
    anonymous = _module(api, "client").Client(base_url=live_server.url, timeout=timeout, httpx_args=hooks)
    models = _module(api, "models")
    orders = {name: _module(api, f"api.orders.{name}") for name in ("create_order", "get_order", "list_orders")}
    lifecycle = {
        name: _module(api, f"api.lifecycle.{name}")
        for name in ("update_order_status", "act_on_order_items", "bulk_cancel_orders")
    }
    get_task = _module(api, "api.tasks.get_task")
    process_payment = _module(api, "api.payments.process_payment")
    put_offer = _module(api, "api.offers.put_offer")
    export_orders = _module(api, "api.exports.export_orders")
    download_export = _module(api, "api.exports.download_export")
    count_orders = _module(api, "api.orders.count_orders")

    customer = unique_customer()
    offer_id = f"offer_{secrets.token_hex(5)}"
    offer = put_offer.sync_detailed(
        offer_id, client=staff, body=models.OfferIn(name="Generated-client offer", price=20.0, stock=50)
    )
    assert offer.status_code == 200 and offer.parsed.stock_available == 50

    def create(quantity_items: int = 1) -> Any:
        body = models.CreateOrderIn(
            customer_id=customer,
            items=[models.OrderItemIn(offer_id=offer_id, quantity=1, price=20.0) for _ in range(quantity_items)],
            payment_method="credit_card",
            payment_gateway_id="stripe_1",
        )
        created = orders["create_order"].sync_detailed(
            client=staff, body=body, idempotency_key=f"gen-{secrets.token_hex(6)}"
        )
        assert created.status_code == 201, created.content
        assert isinstance(created.parsed, models.CreateOrderOut)
        return created

    # create, then poll the checkout task until it finished
    created = create()
    order = created.parsed
    assert order.status == "pending_payment" and order.total_amount == 20.0
    assert created.headers["location"] == f"/api/orders/{order.order_id}"

    def finished() -> Any:
        task = get_task.sync(order.task_id, client=staff)
        return task if task.state in ("succeeded", "failed") else None

    task = wait_for(finished, timeout=30, what="the checkout task")
    assert isinstance(task, models.CheckoutTaskOut) and task.state == "succeeded"
    assert task.result.order_id == order.order_id

    # pay, waiting for the task's outcome
    paid = process_payment.sync_detailed(
        client=staff,
        body=models.PaymentIn(
            order_id=order.order_id,
            action="process",
            payment_details=models.PaymentDetailsIn(method="credit_card", token="tok_visa", amount=20.0),
        ),
        prefer="wait=20",
        idempotency_key=f"pay-{secrets.token_hex(6)}",
    )
    assert paid.status_code == 200, paid.content
    assert isinstance(paid.parsed, models.PaymentResultOut) and paid.parsed.payment_status == "completed"

    # get: the order, with its ETag
    got = orders["get_order"].sync_detailed(order.order_id, client=staff)
    assert isinstance(got.parsed, models.OrderOut), got.content
    assert (got.parsed.status, got.parsed.payment_status) == ("processing", "completed")
    assert [item.offer_id for item in got.parsed.items] == [offer_id]
    etag = got.headers["etag"]

    # list with a filter, following nextLink page by page
    others = [create(quantity_items=2).parsed.order_id for _ in range(2)]
    seen: list[str] = []
    options: dict[str, Any] = {"filter_": f"customerId eq '{customer}'", "orderby": "createdAt asc", "top": 1}
    while True:
        page = orders["list_orders"].sync(client=staff, **options)
        assert isinstance(page, models.OrderListOut), page
        assert page.count == 3
        seen.extend(entry.id for entry in page.value)
        assert all(entry.items for entry in page.value)  # entries carry their items
        if not page.next_link:
            break
        query = dict(parse_qsl(urlsplit(page.next_link).query))
        options = {
            "filter_": query["$filter"],
            "orderby": query["$orderby"],
            "top": int(query["$top"]),
            "skiptoken": query["$skiptoken"],
        }
    assert seen == [order.order_id, *others]
    assert count_orders.sync(client=staff, filter_=f"customerId eq '{customer}'") == "3"

    # status change with If-Match, and a stale one refused
    shipped = lifecycle["update_order_status"].sync_detailed(
        order.order_id, client=staff, body=models.StatusIn(status="shipped", reason="Handed over"), if_match=etag
    )
    assert shipped.status_code == 200 and shipped.parsed.status == "shipped", shipped.content
    stale = lifecycle["update_order_status"].sync_detailed(
        order.order_id, client=staff, body=models.StatusIn(status="completed", reason="late"), if_match=etag
    )
    assert stale.status_code == 412 and stale.parsed.error.code == "PRECONDITION_FAILED"

    # cancel one item of a two-item order
    two = orders["get_order"].sync(others[0], client=staff)
    cancelled_item = lifecycle["act_on_order_items"].sync_detailed(
        client=staff,
        body=models.ItemsIn(
            order_id=two.id,
            items=[models.ItemActionIn(item_id=two.items[0].id, action="cancel", reason="Out of stock")],
        ),
        idempotency_key=f"items-{secrets.token_hex(6)}",
    )
    assert cancelled_item.status_code == 200, cancelled_item.content
    assert [(i.item_id, i.status) for i in cancelled_item.parsed.items] == [(two.items[0].id, "cancelled")]
    assert cancelled_item.parsed.total_amount == 20.0

    # bulk cancel: the task's typed result, waited for
    bulk = lifecycle["bulk_cancel_orders"].sync_detailed(
        client=staff,
        body=models.BulkCancelIn(order_ids=[*others, "ord_does_not_exist"], reason="Customer request"),
        prefer="wait=30",
        idempotency_key=f"bulk-{secrets.token_hex(6)}",
    )
    if bulk.status_code == 202:  # not finished within the wait: poll the task like any client
        parent = wait_for(
            lambda: (t := get_task.sync(bulk.parsed.task_id, client=staff)).state == "succeeded" and t,
            timeout=30,
            what="the bulk cancel",
        )
        result = parent.result
    else:
        assert bulk.status_code == 200, bulk.content
        result = bulk.parsed
    assert (result.cancelled, result.failed) == (2, 1)
    assert [r.order_id for r in result.results if isinstance(r, models.BulkCancelledOut)] == others
    [failure] = [r for r in result.results if isinstance(r, models.BulkCancelFailedOut)]
    assert failure.error.code == "ORDER_NOT_FOUND"

    # export the customer's orders and download the file through its signed link (no key)
    exported = export_orders.sync_detailed(
        client=staff,
        body=models.ExportIn(format_="csv", filters=models.ExportFiltersIn(customer_id=customer)),
        prefer="wait=30",
        idempotency_key=f"export-{secrets.token_hex(6)}",
    )
    if exported.status_code == 202:
        export_task = wait_for(
            lambda: (t := get_task.sync(exported.parsed.task_id, client=staff)).state == "succeeded" and t,
            timeout=60,
            what="the export",
        )
        link = export_task.result
    else:
        assert exported.status_code == 200, exported.content
        link = exported.parsed
    assert link.rows == 3
    url = urlsplit(link.download_url)
    signed = dict(parse_qsl(url.query))
    export_id = url.path.split("/")[3]
    downloaded = download_export.sync_detailed(
        export_id, client=anonymous, expires=int(signed["expires"]), signature=signed["signature"]
    )
    assert downloaded.status_code == 200
    assert downloaded.headers["content-type"].startswith("text/csv")
    lines = downloaded.content.decode().splitlines()
    assert len(lines) == 4 and all(order_id in downloaded.content.decode() for order_id in [order.order_id, *others])

    # every answer the generated client read was also checked against the document
    checked = contract.by_operation - before
    assert set(checked) == {
        "putOffer",
        "createOrder",
        "getTask",
        "processPayment",
        "getOrder",
        "listOrders",
        "countOrders",
        "updateOrderStatus",
        "actOnOrderItems",
        "bulkCancelOrders",
        "exportOrders",
        "downloadExport",
    }, checked
