"""``/api/orders`` and ``/api/orders/{id}``."""

from __future__ import annotations

from datetime import timedelta

import falcon

from api.deps import Deps
from api.openapi import responses, spec
from api.render import etag, order_body
from api.schemas import CreateOrderIn, CreateOrderOut, OrderOut
from api.timefmt import iso
from api.validation import parse_body
from config.metrics import ORDERS_CREATED
from services.orders import (
    ItemRequest,
    PlacementPolicy,
    PlaceOrder,
    get_order,
    place_order,
)


class OrdersResource:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.policy = PlacementPolicy(
            currency=deps.settings.currency,
            payment_window=timedelta(seconds=deps.settings.payment_window_seconds),
            gateways=frozenset(deps.settings.gateways),
        )

    @spec.validate(json=CreateOrderIn, resp=responses(HTTP_201=CreateOrderOut), tags=["orders"], skip_validation=True)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Create an order: reserve stock and queue the gateway checkout."""
        body = parse_body(req, CreateOrderIn)
        command = PlaceOrder(
            customer_id=body.customerId,
            items=[ItemRequest(i.offerId, i.quantity, i.price) for i in body.items],
            payment_method=body.paymentMethod,
            payment_gateway_id=body.paymentGatewayId,
        )
        placed = place_order(
            self.deps.db, req.context.principal, command, self.policy, request_id=req.context.request_id
        )
        ORDERS_CREATED.inc()
        self.deps.sender.send(placed.checkout_job, request_id=req.context.request_id)
        order = placed.order
        resp.status = falcon.HTTP_201
        resp.location = f"/api/orders/{order.id}"
        resp.set_header("ETag", etag(order.version))
        resp.media = {
            "orderId": order.id,
            "status": order.status,
            "totalAmount": order.total_amount,
            "currency": order.currency,
            "paymentUrl": f"{req.prefix}/api/orders/{order.id}/checkout",
            "createdAt": iso(order.created_at),
            "holdExpiresAt": iso(order.hold_expires_at),
            "taskId": placed.checkout_job.job_id,
        }


class OrderResource:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @spec.validate(resp=responses(HTTP_200=OrderOut), tags=["orders"], skip_validation=True)
    def on_get(self, req: falcon.Request, resp: falcon.Response, order_id: str) -> None:
        """An order with its items; ``$expand=history`` adds the status history."""
        expand = {part.strip() for part in (req.get_param("$expand") or "").split(",") if part.strip()}
        order = get_order(self.deps.db, req.context.principal, order_id, with_history="history" in expand)
        resp.set_header("ETag", etag(order.version))
        resp.media = order_body(order)
