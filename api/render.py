"""Service views → the contract's JSON shapes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from api.timefmt import iso
from services.jobs.views import JobView
from services.orders.listing import OrderPage, OrderRow
from services.orders.metrics import Figures, MetricsView
from services.orders.offers import OfferView
from services.orders.query.fields import FIELDS
from services.orders.views import OrderView
from services.payments.settlement import ReportView


def order_body(order: OrderView) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": order.id,
        "customerId": order.customer_id,
        "status": order.status,
        "items": [
            {"id": i.id, "offerId": i.offer_id, "quantity": i.quantity, "price": i.price, "status": i.status}
            for i in order.items
        ],
        "totalAmount": order.total_amount,
        "currency": order.currency,
        "paymentStatus": order.payment_status,
        "createdAt": iso(order.created_at),
        "updatedAt": iso(order.updated_at),
        "version": order.version,
    }
    if order.history is not None:
        body["history"] = [
            {
                "fromStatus": h.from_status,
                "toStatus": h.to_status,
                "reason": h.reason,
                "actor": h.actor,
                "requestId": h.request_id,
                "version": h.version,
                "at": iso(h.created_at),
            }
            for h in order.history
        ]
    return body


def offer_body(offer: OfferView) -> dict[str, Any]:
    return {
        "id": offer.id,
        "name": offer.name,
        "price": offer.price,
        "currency": offer.currency,
        "stockAvailable": offer.stock_available,
        "stockReserved": offer.stock_reserved,
        "updatedAt": iso(offer.updated_at),
    }


def task_body(job: JobView) -> dict[str, Any]:
    total = job.progress_total
    percent = 100.0 if job.state == "succeeded" else (round(100.0 * job.progress_current / total, 1) if total else 0.0)
    return {
        "taskId": job.id,
        "type": job.type,
        "state": job.state,
        "progress": {"current": job.progress_current, "total": total, "percent": percent},
        "result": job.result,
        "error": job.error,
        "createdAt": iso(job.created_at),
        "startedAt": iso(job.started_at),
        "finishedAt": iso(job.finished_at),
    }


def etag(version: int) -> str:
    return f'"{version}"'


def _field_value(row: OrderRow, name: str) -> Any:
    value = getattr(row, FIELDS[name].attribute)
    return iso(value) if isinstance(value, datetime) else value


def order_list_body(page: OrderPage, next_link: str | None) -> dict[str, Any]:
    value = []
    for row in page.rows:
        entry = {name: _field_value(row, name) for name in page.fields}
        if page.expand_items:
            entry["items"] = [
                {"id": i.id, "offerId": i.offer_id, "quantity": i.quantity, "price": i.price, "status": i.status}
                for i in row.items or []
            ]
        value.append(entry)
    body: dict[str, Any] = {"value": value}
    if page.count is not None:
        body["count"] = page.count
    if next_link is not None:
        body["nextLink"] = next_link
    return body


def _figures(figures: Figures) -> dict[str, Any]:
    return {
        "totalOrders": figures.total_orders,
        "totalRevenue": figures.total_revenue,
        "averageOrderValue": figures.average_order_value,
        "ordersByStatus": dict(figures.by_status),
    }


def metrics_body(view: MetricsView) -> dict[str, Any]:
    return {
        **_figures(view.totals),
        "groupBy": view.group_by,
        "timezone": view.timezone,
        "groups": [{"key": key, **_figures(figures)} for key, figures in view.groups],
        "groupsTruncated": view.groups_truncated,
        "asOf": iso(view.as_of),
    }


def _money_fields(entry: dict[str, Any], *names: str) -> dict[str, Any]:
    """A stored report entry with its decimal-string amounts as Decimals (JSON numbers on the wire)."""
    return {key: Decimal(value) if key in names else value for key, value in entry.items()}


def reconciliation_report_body(report: ReportView) -> dict[str, Any]:
    return {
        "id": report.id,
        "date": report.date.isoformat(),
        "gatewayId": report.gateway_id,
        "matchedCount": report.matched_count,
        "missingInGateway": [_money_fields(e, "amount") for e in report.missing_in_gateway],
        "missingInDb": [_money_fields(e, "amount") for e in report.missing_in_db],
        "amountMismatches": [_money_fields(e, "gatewayAmount", "dbAmount") for e in report.amount_mismatches],
        "manualCount": report.manual["count"],
        "manualTotal": Decimal(report.manual["total"]),
        "manualRefundCount": report.manual["refundCount"],
        "manualRefundTotal": Decimal(report.manual["refundTotal"]),
        "createdAt": iso(report.created_at),
    }
