"""Exports end to end: the API queues, a real worker writes the file, the signed link serves it.

The files are read back (csv module, openpyxl) and every cell is compared with the database.
The orders are inserted directly (their text fields carry injection strings and unicode, which
the API's id pattern would refuse but the database may hold).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import multiprocessing
import os
import signal
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlparse, urlsplit

import openpyxl
import pytest
from sqlalchemy import select

from api.links import PublicLinks
from models import Database, Export, Job, Order
from models.ids import new_id
from services.exports import ExportPolicy, build_export, signing
from tests.conftest import auth, unique_customer
from tests.integration.helpers import error_code, wait_task
from tests.support.polling import wait_for
from tests.unit.test_export_units import INJECTIONS, expected_text, ooxml_unescape

ALL = [
    "id",
    "customerId",
    "status",
    "paymentStatus",
    "paymentMethod",
    "paymentGatewayId",
    "totalAmount",
    "currency",
    "itemCount",
    "createdAt",
    "updatedAt",
]
ATTRS = {
    "id": "id",
    "customerId": "customer_id",
    "status": "status",
    "paymentStatus": "payment_status",
    "paymentMethod": "payment_method",
    "paymentGatewayId": "payment_gateway_id",
    "totalAmount": "total_amount",
    "currency": "currency",
    "itemCount": "item_count",
    "createdAt": "created_at",
    "updatedAt": "updated_at",
}
MONEY, INTEGER, DATES = {"totalAmount"}, {"itemCount"}, {"createdAt", "updatedAt"}
AMOUNTS = [Decimal("0.00"), Decimal("0.01"), Decimal("9999999999.99"), Decimal("1234.50"), Decimal("99.99")]
TEXTS = [*INJECTIONS, "Zahlung über ✓", "日本語 😀", 'a,"b"\nc', "credit_card"]
STATUSES = ["completed", "processing", "completed", "cancelled"]
BASE = datetime(2026, 3, 1, 6, 0, 0, tzinfo=UTC)
# Around the date filter's edges (startDate 2026-03-02, endDate 2026-03-04, whole UTC days).
EDGES = [
    datetime(2026, 3, 1, 23, 59, 59, 999000, tzinfo=UTC),
    datetime(2026, 3, 2, 0, 0, 0, tzinfo=UTC),
    datetime(2026, 3, 4, 23, 59, 59, 500000, tzinfo=UTC),
    datetime(2026, 3, 5, 0, 0, 0, tzinfo=UTC),
]


def local(url: str) -> str:
    """The path and query of a download link (links are absolute, under ``PUBLIC_BASE_URL``)."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


@dataclasses.dataclass
class Dataset:
    customer: str
    orders: list[Order]


def make_orders(customer: str, count: int, *, text_fields: bool = True) -> list[Order]:
    orders = []
    for i in range(count):
        created = EDGES[i] if i < len(EDGES) else BASE + timedelta(hours=7 * i, microseconds=1234 * i)
        text = TEXTS[i % len(TEXTS)]
        orders.append(
            Order(
                id=new_id("ord"),
                customer_id=customer,
                status=STATUSES[i % len(STATUSES)] if i >= len(EDGES) else "completed",
                payment_status="completed",  # a status the service gives (the list validates it)
                payment_method=text if text_fields else "credit_card",
                payment_gateway_id=TEXTS[(i + 3) % len(TEXTS)] if text_fields else "sandbox",
                total_amount=AMOUNTS[i % len(AMOUNTS)],
                currency="USD",
                item_count=i % 7 + 1,
                version=1,
                hold_expires_at=created + timedelta(minutes=30),
                created_at=created,
                updated_at=created + timedelta(seconds=i),
            )
        )
    return orders


@pytest.fixture(scope="module")
def dataset(deps) -> Dataset:
    customer = unique_customer()
    orders = make_orders(customer, 26)
    with deps.db.transaction() as session:
        session.add_all(orders)
    return Dataset(customer, orders)


def db_orders(db: Database, customer: str) -> list[Order]:
    """The customer's orders as the database holds them now, in the default export order."""
    with db.reader() as session:
        return list(
            session.scalars(select(Order).where(Order.customer_id == customer).order_by(Order.created_at, Order.id))
        )


def canonical_expected(order: Order, column: str) -> str:
    value = getattr(order, ATTRS[column])
    if column in MONEY:
        return f"{value:.2f}"
    if column in INTEGER:
        return str(value)
    if column in DATES:
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return expected_text(value)


def csv_table(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode("utf-8"), newline="")))


def xlsx_table(content: bytes, columns: list[str]) -> tuple[list[list[str]], list[str]]:
    """All sheets' rows as canonical strings (headers dropped after the first), checking cell types."""
    book = openpyxl.load_workbook(io.BytesIO(content))
    table: list[list[str]] = []
    for sheet_index, sheet in enumerate(book.worksheets):
        for row_index, row in enumerate(sheet.iter_rows()):
            if row_index == 0:
                header = [cell.value for cell in row]
                assert header == columns
                if sheet_index == 0:
                    table.append(header)
                continue
            out = []
            for column, cell in zip(columns, row, strict=True):
                if column in MONEY:
                    assert cell.data_type == "n" and cell.number_format == "0.00"
                    out.append(f"{Decimal(repr(cell.value)).quantize(Decimal('0.01'))}")
                elif column in INTEGER:
                    assert cell.data_type == "n" and isinstance(cell.value, int)
                    out.append(str(cell.value))
                elif column in DATES:
                    assert cell.is_date and isinstance(cell.value, datetime)
                    out.append(cell.value.strftime("%Y-%m-%dT%H:%M:%SZ"))
                else:
                    assert cell.data_type == "s", (column, cell.value)  # never a formula
                    out.append(ooxml_unescape(cell.value or ""))
            table.append(out)
    return table, book.sheetnames


def expected_table(orders: list[Order], columns: list[str]) -> list[list[str]]:
    return [columns] + [[canonical_expected(order, column) for column in columns] for order in orders]


def run_export(client, headers, body: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    accepted = client.simulate_post("/api/orders/export", json=body, headers=headers)
    assert accepted.status_code == 202, accepted.text
    task_id = accepted.json["taskId"]
    assert task_id.startswith("task_")
    assert accepted.json["statusUrl"].endswith(f"/api/tasks/{task_id}")
    assert accepted.headers["location"] == f"/api/tasks/{task_id}"
    task = wait_task(client, task_id, headers)
    assert task["state"] == "succeeded", task
    download = client.simulate_get(local(task["result"]["downloadUrl"]))  # no API key: the link is the credential
    assert download.status_code == 200, download.text
    return task, download


def in_window(order: Order) -> bool:
    day = order.created_at.astimezone(UTC).date()
    return date(2026, 3, 2) <= day <= date(2026, 3, 4)


# --- the files ----------------------------------------------------------------------------------


def test_csv_export_matches_the_database_cell_for_cell(client, admin_headers, worker, dataset, deps):
    task, download = run_export(
        client, admin_headers, {"format": "csv", "filters": {"customerId": dataset.customer}, "columns": ALL}
    )
    assert download.headers["content-type"] == "text/csv; charset=utf-8"
    orders = db_orders(deps.db, dataset.customer)
    assert csv_table(download.content) == expected_table(orders, ALL)
    assert task["result"]["rows"] == len(orders) == 26
    # the injection strings really were in the data, and came out prefixed
    assert any(o.payment_method == "=1+2" for o in orders) and b",'=1+2," in download.content


def test_prefer_wait_answers_with_the_finished_export(client, admin_headers, worker, dataset):
    answered = client.simulate_post(
        "/api/orders/export",
        json={"format": "csv", "filters": {"customerId": dataset.customer}, "columns": ["id"]},
        headers={**admin_headers, "Prefer": "wait=20"},
    )
    assert answered.status_code == 200, answered.text
    assert answered.headers["preference-applied"] == "wait=20"
    assert set(answered.json) == {"exportId", "rows", "bytes", "sha256", "downloadUrl", "expiresAt"}
    assert answered.json["rows"] == 26
    assert client.simulate_get(local(answered.json["downloadUrl"])).status_code == 200


def test_xlsx_export_matches_the_database_cell_for_cell(client, admin_headers, worker, dataset, deps):
    task, download = run_export(
        client, admin_headers, {"format": "excel", "filters": {"customerId": dataset.customer}}
    )  # "excel" is xlsx; no columns = every column
    assert download.headers["content-type"] == ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    assert download.headers["content-disposition"].endswith('.xlsx"')
    table, sheets = xlsx_table(download.content, ALL)
    assert sheets == ["Orders"]
    assert table == expected_table(db_orders(deps.db, dataset.customer), ALL)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_filtered_column_subset_in_requested_order(client, admin_headers, worker, dataset, deps, fmt):
    columns = ["totalAmount", "id", "createdAt", "paymentGatewayId"]
    body = {
        "format": fmt,
        "filters": {
            "status": "completed",
            "startDate": "2026-03-02",
            "endDate": "2026-03-04",
            "customerId": dataset.customer,
        },
        "columns": columns,
        "$orderby": "totalAmount desc",
    }
    task, download = run_export(client, admin_headers, body)
    orders = [o for o in db_orders(deps.db, dataset.customer) if o.status == "completed" and in_window(o)]
    orders.sort(key=lambda o: o.id)
    orders.sort(key=lambda o: o.total_amount, reverse=True)
    table = csv_table(download.content) if fmt == "csv" else xlsx_table(download.content, columns)[0]
    assert table == expected_table(orders, columns)
    ids = {o.id for o in orders}
    # the edges: 00:00:00 of startDate and 23:59:59.5 of endDate are in; a moment outside is out
    assert dataset.orders[1].id in ids and dataset.orders[2].id in ids
    assert dataset.orders[0].id not in ids and dataset.orders[3].id not in ids
    assert task["result"]["rows"] == len(orders) > 3


def test_finished_task_result_progress_and_expiry(client, admin_headers, worker, dataset, deps, settings):
    before = datetime.now(UTC)
    task, download = run_export(client, admin_headers, {"format": "csv", "filters": {"customerId": dataset.customer}})
    result = task["result"]
    assert set(result) == {"exportId", "rows", "bytes", "sha256", "downloadUrl", "expiresAt"}
    assert result["exportId"].startswith("exp_")
    assert result["bytes"] == len(download.content) == int(download.headers["content-length"])
    assert result["sha256"] == hashlib.sha256(download.content).hexdigest()
    assert task["progress"] == {"current": 26, "total": 26, "percent": 100.0}
    assert task["type"] == "export"
    expires_at = datetime.strptime(result["expiresAt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    ttl = timedelta(seconds=settings.export_ttl_seconds)
    assert before + ttl - timedelta(seconds=2) <= expires_at <= datetime.now(UTC) + ttl
    with deps.db.reader() as session:
        job = session.get(Job, task["taskId"])
        record = session.get(Export, result["exportId"])
        assert job.queue == "exports" and job.progress_current == job.progress_total == 26
        assert job.expires_at.replace(microsecond=0) == expires_at
        assert record.job_id == job.id and record.rows == 26 and record.sha256 == result["sha256"]
        assert record.bytes == result["bytes"] and record.format == "csv"
        assert record.expires_at.replace(microsecond=0) == expires_at
    files = os.listdir(settings.export_dir)
    assert f"{result['exportId']}.csv" in files and not [f for f in files if f.endswith(".part")]


# --- the download link --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_export(worker, dataset, app, admin) -> dict[str, Any]:
    from falcon import testing

    client = testing.TestClient(app)
    task, download = run_export(client, auth(admin), {"format": "csv", "filters": {"customerId": dataset.customer}})
    return {"result": task["result"], "content": download.content}


def test_download_headers(client, finished_export):
    result = finished_export["result"]
    full = client.simulate_get(local(result["downloadUrl"]))
    assert full.status_code == 200
    assert full.headers["content-disposition"] == f'attachment; filename="orders-{result["exportId"]}.csv"'
    assert full.headers["content-length"] == str(result["bytes"])
    assert full.headers["accept-ranges"] == "bytes"
    head = client.simulate_head(local(result["downloadUrl"]))
    assert head.status_code == 200 and head.headers["content-length"] == str(result["bytes"]) and not head.content


def test_range_requests(client, finished_export):
    url, content = local(finished_export["result"]["downloadUrl"]), finished_export["content"]
    size = len(content)
    part = client.simulate_get(url, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == content[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{size}" and part.headers["content-length"] == "100"
    tail = client.simulate_get(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == content[-10:]
    rest = client.simulate_get(url, headers={"Range": f"bytes={size - 5}-"})
    assert rest.status_code == 206 and rest.content == content[-5:]
    outside = client.simulate_get(url, headers={"Range": f"bytes={size}-"})
    assert outside.status_code == 416 and outside.headers["content-range"] == f"bytes */{size}"
    stale = client.simulate_get(url, headers={"Range": "bytes=0-9", "If-Range": '"not-the-etag"'})
    assert stale.status_code == 200 and stale.content == content


def test_tampered_links_are_403(client, finished_export):
    url = urlparse(finished_export["result"]["downloadUrl"])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    flipped = query["signature"][:-1] + ("0" if query["signature"][-1] != "0" else "1")
    for path, params in [
        (url.path, {**query, "signature": flipped}),
        (url.path, {**query, "expires": str(int(query["expires"]) + 3600)}),
        (url.path, {"expires": query["expires"]}),
        (url.path.replace("/exp_", "/exp_0"), query),
    ]:
        result = client.simulate_get(path, params=params)
        assert result.status_code == 403 and error_code(result) == "FORBIDDEN", (params, result.text)


def download_link(settings, export_id: str, expires_at: datetime) -> str:
    """A genuinely signed download link (path and query) of ``export_id``."""
    return signing.signed_link(PublicLinks("").export_file_url(export_id), settings.secret_key, export_id, expires_at)


def test_expired_link_is_410(client, finished_export, settings):
    export_id = finished_export["result"]["exportId"]
    past = datetime.now(UTC) - timedelta(minutes=1)
    result = client.simulate_get(download_link(settings, export_id, past))
    assert result.status_code == 410 and error_code(result) == "EXPORT_EXPIRED"


def test_genuine_link_to_unknown_export_is_404(client, settings):
    future = datetime.now(UTC) + timedelta(hours=1)
    result = client.simulate_get(download_link(settings, "exp_nothing", future))
    assert result.status_code == 404 and error_code(result) == "NOT_FOUND"


# --- what the API refuses -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"format": "csv", "columns": ["id", "password"]}, "VALIDATION_ERROR", "columns[1]"),
        ({"format": "csv", "columns": []}, "VALIDATION_ERROR", "columns"),
        ({"format": "pdf"}, "VALIDATION_ERROR", "format"),
        ({"format": "csv", "filters": {"status": "lost"}}, "VALIDATION_ERROR", "filters.status"),
        ({"format": "csv", "filters": {"startDate": "2026-02-30"}}, "VALIDATION_ERROR", "filters.startDate"),
        ({"format": "csv", "filters": {"startDate": "2026-06-02", "endDate": "2026-01-01"}}, "VALIDATION_ERROR", None),
        ({"format": "csv", "filters": {"colour": "red"}}, "VALIDATION_ERROR", "filters.colour"),
        ({"format": "csv", "$orderby": "secret desc"}, "INVALID_QUERY", "$orderby"),
    ],
)
def test_bad_requests_are_400(client, admin_headers, body, code, field):
    result = client.simulate_post("/api/orders/export", json=body, headers=admin_headers)
    assert result.status_code == 400 and error_code(result) == code, result.text
    if field:
        assert field in [d.get("field") for d in result.json["error"]["details"]], result.json


@pytest.mark.parametrize("filters", ["status eq 'completed'", {"$filter": "status eq 'completed'"}])
def test_odata_filter_string(client, admin_headers, filters):
    import importlib.util

    result = client.simulate_post(
        "/api/orders/export", json={"format": "csv", "filters": filters}, headers=admin_headers
    )
    if importlib.util.find_spec("services.orders.query") is None:
        assert result.status_code == 400 and error_code(result) == "INVALID_QUERY"
        assert "not yet supported" in result.json["error"]["message"]
    else:
        assert result.status_code == 202, result.text


def test_customers_may_not_export(client, make_key):
    key = make_key("customer", unique_customer())
    result = client.simulate_post("/api/orders/export", json={"format": "csv"}, headers=auth(key))
    assert result.status_code == 403 and error_code(result) == "FORBIDDEN"


def test_ops_may_export_and_keys_are_required(client, make_key):
    assert client.simulate_post("/api/orders/export", json={"format": "csv"}).status_code == 401
    ops = make_key("ops")
    body = {"format": "csv", "filters": {"customerId": unique_customer()}}
    assert client.simulate_post("/api/orders/export", json=body, headers=auth(ops)).status_code == 202


# --- the build itself, in process ---------------------------------------------------------------


def policy_for(settings, **changes: Any) -> ExportPolicy:
    return dataclasses.replace(ExportPolicy.from_settings(settings), **changes)


def build_args(customer: str, fmt: str, columns: list[str] = ALL) -> dict[str, Any]:
    """An export job's args, as ``request_export`` writes them."""
    export_id = new_id("exp")
    return {
        "exportId": export_id,
        "format": fmt,
        "columns": columns,
        "filters": {"customerId": customer},
        "fileUrl": PublicLinks("").export_file_url(export_id),
    }


def test_xlsx_rolls_over_to_a_second_sheet(deps, settings, dataset):
    args = build_args(dataset.customer, "xlsx")
    result = build_export(deps.db, args, policy_for(settings, sheet_rows=10), job_id=new_id("task"))
    content = (settings.export_dir / f"{args['exportId']}.xlsx").read_bytes()
    table, sheets = xlsx_table(content, ALL)
    assert sheets == ["Orders", "Orders 2", "Orders 3"]  # 9 + 9 + 8 rows under a header each
    assert table == expected_table(db_orders(deps.db, dataset.customer), ALL)
    assert result["rows"] == 26


def test_progress_rises_while_the_file_is_written(deps, settings):
    customer = unique_customer()
    with deps.db.transaction() as session:
        session.add_all(make_orders(customer, 60, text_fields=False))
    seen: list[tuple[int, int]] = []
    policy = policy_for(settings, progress_rows=10, progress_seconds=3600)
    build_export(
        deps.db,
        build_args(customer, "csv"),
        policy,
        job_id=new_id("task"),
        report_progress=lambda c, t: seen.append((c, t)),
    )
    currents = [current for current, _ in seen]
    assert {total for _, total in seen} == {60}
    assert currents == sorted(currents) and currents[0] == 0 and currents[-1] == 60
    assert 3 <= len(seen) <= 60 // 10 + 2  # throttled: never one write per row


def _killed_mid_export(database_url: str, export_dir: str, args: dict[str, Any]) -> None:
    """Child process: build, and die by SIGKILL at the first progress report after row 0."""
    from config.settings import Settings

    settings = Settings(database_url=database_url, export_dir=export_dir)  # type: ignore[arg-type]
    db = Database.connect(settings)

    def die(current: int, total: int) -> None:
        if current > 0:
            os.kill(os.getpid(), signal.SIGKILL)

    build_export(db, args, policy_for(settings, progress_rows=5), job_id="task_killed", report_progress=die)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_killed_build_leaves_nothing_served_and_a_rerun_starts_over(deps, settings, dataset, fmt):
    args = build_args(dataset.customer, fmt)
    export_id = args["exportId"]
    child = multiprocessing.get_context("spawn").Process(
        target=_killed_mid_export, args=(settings.database_url, str(settings.export_dir), args)
    )
    child.start()
    child.join(30)
    assert child.exitcode == -signal.SIGKILL
    # What the killed attempt left: a half-written .part (csv) or xlsxwriter's scratch directory
    # (xlsx writes its zip only at close), never a file under the final name.
    leftovers = [name for name in os.listdir(settings.export_dir) if export_id in name]
    assert leftovers and all(name.endswith((".part", ".tmp")) for name in leftovers), leftovers
    with deps.db.reader() as session:
        assert session.get(Export, export_id) is None  # nothing to serve
    result = build_export(deps.db, args, ExportPolicy.from_settings(settings), job_id=new_id("task"), attempt=2)
    names = sorted(name for name in os.listdir(settings.export_dir) if export_id in name)
    assert names == [f"{export_id}.{fmt}"]  # stale .part files and scratch dirs removed
    content = (settings.export_dir / names[0]).read_bytes()
    table = csv_table(content) if fmt == "csv" else xlsx_table(content, ALL)[0]
    assert table == expected_table(db_orders(deps.db, dataset.customer), ALL)
    assert result["sha256"] == hashlib.sha256(content).hexdigest()


def test_export_ids_and_paths_never_escape_the_directory(client, settings):
    future = datetime.now(UTC) + timedelta(hours=1)
    sneaky = "..%2F..%2Fetc%2Fpasswd"
    result = client.simulate_get(download_link(settings, sneaky, future))
    assert result.status_code == 404


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (the worker's prefork pool)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()  # noqa: SIM115
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def test_worker_killed_mid_export_is_redelivered_and_starts_over(client, admin_headers, worker, deps, settings):
    customer = unique_customer()
    orders = make_orders(customer, 20_000, text_fields=False)
    with deps.db.transaction() as session:
        session.add_all(orders)
    body = {"format": "xlsx", "filters": {"customerId": customer}, "columns": ["id", "totalAmount", "createdAt"]}
    task_id = client.simulate_post("/api/orders/export", json=body, headers=admin_headers).json["taskId"]

    def running_with_progress() -> bool:
        task = client.simulate_get(f"/api/tasks/{task_id}", headers=admin_headers).json
        assert task["state"] != "succeeded", "the export finished before it could be killed"
        return task["state"] == "running" and task["progress"]["current"] > 0

    wait_for(running_with_progress, timeout=30, interval=0.02, what="the export to be under way")
    for child in _children(worker.pid):  # SIGKILL the pool: the task's process dies mid-file
        os.kill(child, signal.SIGKILL)
    with deps.db.reader() as session:
        export_id = session.get(Job, task_id).args["exportId"]
        assert session.get(Export, export_id) is None
    assert not (settings.export_dir / f"{export_id}.xlsx").exists()

    task = wait_task(client, task_id, admin_headers, timeout=60)
    assert task["state"] == "succeeded", task
    with deps.db.reader() as session:
        assert session.get(Job, task_id).attempts >= 2  # the redelivered message ran it again
    content = client.simulate_get(local(task["result"]["downloadUrl"])).content
    table, _ = xlsx_table(content, body["columns"])
    assert table == expected_table(db_orders(deps.db, customer), body["columns"])
    assert sorted(name for name in os.listdir(settings.export_dir) if export_id in name) == [f"{export_id}.xlsx"]
