"""Export files in a shared store: any host serves any export, and two attempts of one export
running at once agree on one file.

The S3 store runs against moto's S3 server on a local port (the real wire format: boto3 signs
and sends HTTP, the server answers S3's XML, conditional writes included).
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from typing import Any
from urllib.parse import urlsplit

import pytest
from falcon import testing

from api.app import create_app
from models import Export
from models.ids import new_id
from services.exports import ExportPolicy, build_export
from services.exports.storage import LocalStorage, S3Storage
from tests.conftest import unique_customer
from tests.integration.test_exports import build_args, csv_table, make_orders, xlsx_table
from tests.support.s3_standin import S3StandIn


def settings_for(settings, s3_standin: S3StandIn, kind: str, scratch) -> Any:  # noqa: ANN001
    if kind == "local":
        return settings.with_(export_dir=scratch)
    return settings.with_(export_dir=scratch, **s3_standin.settings_changes(s3_standin.new_bucket()))


def objects_of(policy: ExportPolicy, export_id: str) -> list[str]:
    return sorted(item.name for item in policy.store.listing() if export_id in item.name)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
@pytest.mark.parametrize("kind", ["local", "s3"])
def test_two_attempts_at_once_agree_on_one_file(deps, settings, s3_standin, tmp_path, kind, fmt) -> None:
    """Attempt A is mid-file when attempt B starts (B's sweep of dead attempts' leftovers must not
    touch A's), and an order arrives between their snapshots, so their files differ. Whoever
    publishes first wins; both report the winner's file, and the row and the store agree."""
    own = settings_for(settings, s3_standin, kind, tmp_path / "scratch")
    policy = ExportPolicy.from_settings(own)
    assert isinstance(policy.store, LocalStorage if kind == "local" else S3Storage)
    customer = unique_customer()
    with deps.db.transaction() as session:
        session.add_all(make_orders(customer, 300, text_fields=False))
    args = build_args(customer, fmt, ["id", "totalAmount", "createdAt"])
    export_id, job_id = args["exportId"], new_id("task")
    a_mid_file, b_started = threading.Event(), threading.Event()
    results: dict[str, dict[str, Any]] = {}
    errors: list[BaseException] = []

    def a_progress(current: int, total: int) -> None:
        if not a_mid_file.is_set():
            a_mid_file.set()
            assert b_started.wait(20), "attempt B never started"

    def b_progress(current: int, total: int) -> None:
        b_started.set()

    def attempt(name: str, number: int, progress: Any) -> None:
        try:
            results[name] = build_export(deps.db, args, policy, job_id=job_id, attempt=number, report_progress=progress)
        except BaseException as exc:  # reported below, with the other attempt's outcome
            errors.append(exc)

    first = threading.Thread(target=attempt, args=("a", 1, a_progress))
    first.start()
    assert a_mid_file.wait(20)
    with deps.db.transaction() as session:  # B's snapshot sees one order more than A's
        session.add_all(make_orders(customer, 1, text_fields=False))
    second = threading.Thread(target=attempt, args=("b", 2, b_progress))
    second.start()
    first.join(60)
    second.join(60)
    assert not errors, errors
    assert results["a"] == results["b"], results  # the same file, whichever published first
    result = results["a"]
    assert result["rows"] in (300, 301)

    with deps.db.reader() as session:
        record = session.get(Export, export_id)
    assert (record.sha256, record.bytes, record.rows) == (result["sha256"], result["bytes"], result["rows"])
    assert objects_of(policy, export_id) == [f"{export_id}.{fmt}"]
    with policy.store.open(record.path) as stream:
        content = stream.read()
    assert hashlib.sha256(content).hexdigest() == result["sha256"] and len(content) == result["bytes"]
    table = csv_table(content) if fmt == "csv" else xlsx_table(content, ["id", "totalAmount", "createdAt"])[0]
    assert len(table) == result["rows"] + 1
    leftovers = [path.name for path in (tmp_path / "scratch").iterdir() if export_id in path.name]
    assert leftovers == ([f"{export_id}.{fmt}"] if kind == "local" else []), leftovers


def test_any_hosts_web_serves_an_export_another_host_built(deps, settings, s3_standin, tmp_path) -> None:
    """A worker on host A builds into S3; host B's web (its own, empty EXPORT_DIR) streams it,
    ranges included. With local storage, host B answers 404: the problem a shared store solves."""
    store = s3_standin.settings_changes(s3_standin.new_bucket())
    host_a = settings.with_(export_dir=tmp_path / "host-a", **store)
    customer = unique_customer()
    with deps.db.transaction() as session:
        session.add_all(make_orders(customer, 40, text_fields=False))
    args = build_args(customer, "csv")
    result = build_export(deps.db, args, ExportPolicy.from_settings(host_a), job_id=new_id("task"))
    assert not list((tmp_path / "host-a").iterdir())  # scratch only: nothing left on host A

    link = urlsplit(result["downloadUrl"])
    host_b = settings.with_(export_dir=tmp_path / "host-b", **store)
    web_b = testing.TestClient(create_app(host_b, dataclasses.replace(deps, settings=host_b)))
    whole = web_b.simulate_get(link.path, query_string=link.query)
    assert whole.status_code == 200, whole.text
    assert hashlib.sha256(whole.content).hexdigest() == result["sha256"]
    assert whole.headers["etag"] == f'"{result["sha256"]}"'
    assert whole.headers["content-disposition"] == f'attachment; filename="orders-{args["exportId"]}.csv"'
    part = web_b.simulate_get(link.path, query_string=link.query, headers={"Range": "bytes=10-29"})
    assert part.status_code == 206 and part.content == whole.content[10:30]
    assert part.headers["content-range"] == f"bytes 10-29/{len(whole.content)}"
    tail = web_b.simulate_get(link.path, query_string=link.query, headers={"Range": "bytes=-7"})
    assert tail.status_code == 206 and tail.content == whole.content[-7:]
    assert web_b.simulate_head(link.path, query_string=link.query).status_code == 200
    assert not (tmp_path / "host-b").exists() or not list((tmp_path / "host-b").iterdir())

    local = settings.with_(export_dir=tmp_path / "host-b-local")
    local_b = testing.TestClient(create_app(local, dataclasses.replace(deps, settings=local)))
    assert local_b.simulate_get(link.path, query_string=link.query).status_code == 404

    # Gone from the store (expired elsewhere, deleted by hand): 404, not a 500 or a truncated 200.
    ExportPolicy.from_settings(host_b).store.delete(f"{args['exportId']}.csv")
    assert web_b.simulate_get(link.path, query_string=link.query).status_code == 404
    assert web_b.simulate_head(link.path, query_string=link.query).status_code == 404


def test_an_unreachable_store_answers_503_not_500(deps, settings, s3_standin, tmp_path) -> None:
    store = s3_standin.settings_changes(s3_standin.new_bucket())
    host_a = settings.with_(export_dir=tmp_path / "host-a", **store)
    customer = unique_customer()
    with deps.db.transaction() as session:
        session.add_all(make_orders(customer, 3, text_fields=False))
    result = build_export(
        deps.db, build_args(customer, "csv"), ExportPolicy.from_settings(host_a), job_id=new_id("task")
    )
    link = urlsplit(result["downloadUrl"])
    # Host B's store endpoint answers nothing (a port no one listens on).
    away = settings.with_(export_dir=tmp_path / "host-b", **{**store, "export_s3_endpoint_url": "http://127.0.0.1:9"})
    web_b = testing.TestClient(create_app(away, dataclasses.replace(deps, settings=away)))
    answer = web_b.simulate_get(link.path, query_string=link.query)
    assert answer.status_code == 503 and answer.json["error"]["code"] == "SERVICE_UNAVAILABLE", answer.text
    assert answer.headers.get("retry-after")
