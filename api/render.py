"""Service views → the contract's JSON shapes."""

from __future__ import annotations

from typing import Any

from api.timefmt import iso
from services.jobs import JobView
from services.offers import OfferView
from services.orders import OrderView


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
