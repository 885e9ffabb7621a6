"""The order lifecycle over HTTP: status changes, item actions, bulk cancel, and the lifecycle itself."""

from __future__ import annotations

import falcon

from api.async_answer import answer_job
from api.deps import Deps
from api.openapi import ETAG, IF_MATCH, PREFER, Reply, operation, queued
from api.preconditions import if_match_versions
from api.render import etag
from api.schemas import (
    BulkCancelIn,
    BulkCancelOut,
    BulkCancelQuery,
    ItemsIn,
    ItemsOut,
    OrderStatesOut,
    StatusIn,
    StatusOut,
)
from api.timefmt import iso
from api.validation import parse_body
from services.changes.bulk_cancel import plan_bulk_cancel, start_bulk_cancel
from services.changes.items import ItemAction, act_on_items
from services.changes.transitions import change_status
from services.kernel import lifecycle
from services.kernel.errors import ValidationFailed


class OrderStatusResource:
    """``PATCH /api/orders/{id}/status`` (admin, ops; a customer key is 403 before any lookup)."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @operation(
        "updateOrderStatus",
        tags=["lifecycle"],
        json=StatusIn,
        request_headers=(IF_MATCH,),
        replies={200: Reply(StatusOut, "Changed.", (ETAG,))},
        errors=(403, 404, 412),
    )
    def on_patch(self, req: falcon.Request, resp: falcon.Response, order_id: str) -> None:
        """Update order status (admin, ops).

        Body ``{"status", "reason"}``; answer ``{"id", "status", "updatedAt", "version"}`` with the
        new ``ETag``. ``If-Match: "<version>"`` (the order's ``ETag``) makes a stale version 412
        ``PRECONDITION_FAILED`` with ``details[0].currentVersion``; without it, concurrent changes
        are applied one after another, each checked against the lifecycle, none lost. A forbidden or
        unknown status (the current one included) is 400 ``INVALID_STATUS`` with ``currentStatus``
        and ``allowedTransitions``. Side effects belong to the transition: ``processing`` commits the
        held stock, ``cancelled`` gives stock back and refunds captured money, ``completed →
        refunded`` refunds in full. Each change is a history row (``GET /api/orders/{id}?$expand=
        history``). Customer keys get 403 ``FORBIDDEN`` before any lookup (they cancel their
        orders' items through ``/api/orders/items``)."""
        body = parse_body(req, StatusIn)
        changed = change_status(
            self.deps.db,
            req.context.principal,
            order_id,
            body.status,
            reason=body.reason,
            if_match=if_match_versions(req.get_header("If-Match")),
            request_id=req.context.request_id,
        )
        self.deps.sender.send_all(changed.jobs, request_id=req.context.request_id)
        resp.set_header("ETag", etag(changed.version))
        resp.media = {
            "id": changed.id,
            "status": changed.status,
            "updatedAt": iso(changed.updated_at),
            "version": changed.version,
        }


class OrderItemsResource:
    """``POST /api/orders/items``: cancel or verify items, all or nothing."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @operation(
        "actOnOrderItems",
        tags=["lifecycle"],
        json=ItemsIn,
        idempotent=True,
        replies={200: Reply(ItemsOut, "Every action applied.", (ETAG,))},
        errors=(404,),
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Cancel or verify order items (all or nothing).

        Answer: the brief's ``{"orderId", "items": [{"itemId", "status"}]}`` plus ``orderStatus``,
        ``totalAmount`` and ``version``. One unknown item (400 ``ITEM_NOT_FOUND``), an item named
        twice (400 ``VALIDATION_ERROR``) or one action the item lifecycle forbids, or any action on
        an order past ``processing`` (400 ``INVALID_STATUS``), changes nothing; ``details`` names
        each offending item. Cancelling items releases their stock, recomputes ``totalAmount`` and
        refunds their share when paid; cancelling the last live item cancels the order. Repeating
        an action already applied is a no-op. Customers act on their own orders' items."""
        body = parse_body(req, ItemsIn)
        changed = act_on_items(
            self.deps.db,
            req.context.principal,
            body.orderId,
            [ItemAction(i.itemId, i.action, i.reason) for i in body.items],
            request_id=req.context.request_id,
        )
        self.deps.sender.send_all(changed.jobs, request_id=req.context.request_id)
        resp.set_header("ETag", etag(changed.version))
        resp.media = {
            "orderId": changed.order_id,
            "items": [{"itemId": item_id, "status": status} for item_id, status in changed.items],
            "orderStatus": changed.order_status,
            "totalAmount": changed.total_amount,
            "version": changed.version,
        }


class BulkCancelResource:
    """``POST /api/orders/bulk-cancel`` (admin, ops): one cancellation task per order, gathered by a
    parent task."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @operation(
        "bulkCancelOrders",
        tags=["lifecycle"],
        json=BulkCancelIn,
        query=BulkCancelQuery,
        idempotent=True,
        request_headers=(PREFER,),
        replies=queued(BulkCancelOut, "the brief's bulk-cancel answer (also the `?dryRun=true` answer)."),
        errors=(403,),
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Bulk cancel orders: one cancellation task per order (admin, ops).

        Up to 10,000 ids (more is 413 ``PAYLOAD_TOO_LARGE``). Answers 202 with the task; its result
        is ``{"cancelled", "failed", "results"}``, one entry per distinct id in request order:
        ``{"orderId", "status": "cancelled"}`` (already cancelled counts) or ``{"orderId", "error":
        {"code", "message", "details"}}`` (``ORDER_NOT_FOUND``, ``INVALID_STATUS``). The task's
        ``progress`` counts finished orders. ``?dryRun=true`` answers 200 at once with the same
        shape plus ``dryRun`` and each order's ``currentStatus``, changing nothing. An operator's
        tool: a customer key gets 403 ``FORBIDDEN`` (dry run included) before anything is read or
        written; customers cancel their orders' items through ``/api/orders/items``. ``Prefer:
        wait=N`` answers 200 with the result when the task finishes within N seconds."""
        body = parse_body(req, BulkCancelIn)
        principal = req.context.principal
        if _dry_run(req):
            resp.media = plan_bulk_cancel(self.deps.db, principal, body.orderIds)
            return
        job = start_bulk_cancel(
            self.deps.db, principal, body.orderIds, reason=body.reason, request_id=req.context.request_id
        )
        self.deps.sender.send(job, request_id=req.context.request_id)
        answer_job(req, resp, self.deps.db, job.job_id, self.deps.notices)


def _dry_run(req: falcon.Request) -> bool:
    """``dryRun`` as the document types it, a boolean: ``true`` or ``false`` (any case), else 400.

    Falcon's lenient reading would take ``?dryRun=`` (or ``yes``) for true: a bulk cancel must not
    depend on how a typo is read."""
    raw = req.get_param("dryRun")
    if raw is None:
        return False
    if isinstance(raw, str) and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise ValidationFailed("Invalid query parameters.", details=[{"field": "dryRun", "message": "true or false"}])


class OrderStatesResource:
    """``GET /api/meta/order-states``: the lifecycle as data (public)."""

    public = True

    @operation(
        "getOrderStates",
        tags=["lifecycle"],
        public=True,
        replies={200: Reply(OrderStatesOut, "The lifecycles.")},
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The order lifecycle (public).

        Order and item statuses, each with the statuses it may move to, and the item actions."""
        resp.cache_control = ["public", "max-age=3600"]
        resp.media = lifecycle.describe()
