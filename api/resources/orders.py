"""``/api/orders`` (create, list), ``/api/orders/metrics`` and ``/api/orders/{id}``."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote, urlencode

import falcon

from api.deps import Deps
from api.links import PublicLinks
from api.media import send_json
from api.openapi import ETAG, LOCATION, Reply, operation
from api.render import etag, metrics_body, order_body, order_list_body
from api.schemas import (
    CreateOrderIn,
    CreateOrderOut,
    ListOrdersQuery,
    MetricsOut,
    MetricsQueryIn,
    OrderListOut,
    OrderOut,
    OrderQuery,
)
from api.timefmt import iso
from api.validation import parse_body, parse_query
from config.metrics import ORDERS_CREATED
from services.kernel.errors import InvalidQuery
from services.orders.listing import ListOrders, count_orders, list_orders
from services.orders.metrics import MetricsQuery, order_metrics
from services.orders.placing import ItemRequest, PlacementPolicy, PlaceOrder, place_order
from services.orders.reading import get_order


class OrdersResource:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.policy = PlacementPolicy(
            currency=deps.settings.currency,
            payment_window=timedelta(seconds=deps.settings.payment_window_seconds),
            gateways=frozenset(deps.settings.gateways),
            checkout_return=PublicLinks(deps.settings.public_base_url),
        )

    @operation(
        "createOrder",
        tags=["orders"],
        json=CreateOrderIn,
        idempotent=True,
        replies={201: Reply(CreateOrderOut, "Created: stock held, the checkout task queued.", (LOCATION, ETAG))},
        errors=(403,),
    )
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

    @operation(
        "listOrders",
        tags=["orders"],
        query=ListOrdersQuery,
        replies={200: Reply(OrderListOut, "One page of orders.")},
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """List orders with OData $filter, $orderby, $top, $skip, $count, $select and $expand=items.

        Customers see only their own orders. Pages are keyset-based: follow `nextLink` (an opaque,
        signed `$skiptoken`) to get the next page without skipping or repeating rows even while
        orders are being created. Any option the service cannot accept is 400 INVALID_QUERY with
        `details[].parameter` and `details[].position` (0-based character offset).
        """
        options = list_options(req)
        page = list_orders(self.deps.db, req.context.principal, options, secret_key=self.deps.settings.secret_key)
        next_link = None
        if page.next_token is not None:
            next_link = f"{req.prefix}{req.path}?{next_query(options, page.next_token)}"
        send_json(resp, order_list_body(page, next_link))


LIST_OPTIONS = {
    "$filter": "filter",
    "$orderby": "orderby",
    "$top": "top",
    "$skip": "skip",
    "$count": "count",
    "$select": "select",
    "$expand": "expand",
    "$skiptoken": "skiptoken",
}
# System query options OData defines that this collection does not offer: named, not ignored.
UNSUPPORTED_OPTIONS = ("$search", "$apply", "$compute", "$index", "$levels", "$schemaversion", "$deltatoken", "$id")
_JSON_FORMATS = ("json", "application/json")


def list_options(req: falcon.Request) -> ListOrders:
    """The raw list options, read as OData 4.01 reads a query string.

    System query option names are case-insensitive and their ``$`` is optional (``$FILTER``,
    ``$OrderBy``, ``top``); other names are custom options, which this service has none of and
    ignores (cache-busters such as ``_=1700000000``). An unknown ``$`` name, a parameter alias
    (``@p``), an option given twice (``$top`` and ``top`` included) or an unsupported one is
    INVALID_QUERY.
    """
    options: dict[str, str] = {}
    for name, value in req.params.items():
        if name.startswith("@"):
            raise InvalidQuery.at(name[:50], 0, "parameter aliases (@name) are not supported")
        canonical = "$" + name.lower().removeprefix("$")
        if canonical == "$format":
            _check_format(name, value)
            continue
        if canonical not in LIST_OPTIONS:
            if canonical in UNSUPPORTED_OPTIONS:
                raise InvalidQuery.at(name[:50], 0, f"{canonical} is not supported here")
            if name.startswith("$"):
                raise InvalidQuery.at(name[:50], 0, f"unknown query option; allowed: {', '.join(LIST_OPTIONS)}")
            continue  # a custom option
        attribute = LIST_OPTIONS[canonical]
        if not isinstance(value, str) or attribute in options:
            raise InvalidQuery.at(name[:50], 0, "given more than once")
        options[attribute] = value
    return ListOrders(**options)


def _check_format(name: str, value: str | list[str]) -> None:
    """``$format`` may only ask for what is served anyway: JSON."""
    if not isinstance(value, str) or value.split(";")[0].strip().lower() not in _JSON_FORMATS:
        raise InvalidQuery.at(name[:50], 0, "only JSON is served ($format=json)")


def next_query(options: ListOrders, token: str) -> str:
    """The query string of the next page: the same options, the new token, no $skip."""
    kept = [(name, getattr(options, attr)) for name, attr in LIST_OPTIONS.items() if attr not in ("skip", "skiptoken")]
    params = [(name, value) for name, value in kept if value is not None] + [("$skiptoken", token)]
    return urlencode(params, quote_via=quote, safe="$,'()/:")


class OrderCountResource:
    """``GET /api/orders/$count``: the number of orders matching ``$filter``, as ``text/plain``."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @operation(
        "countOrders",
        tags=["orders"],
        query=ListOrdersQuery,
        replies={
            200: Reply(
                description="The count, a plain decimal number.",
                content={"text/plain": {"type": "string", "pattern": "^[0-9]+$", "examples": ["100"]}},
            )
        },
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Count orders (OData's `$count` segment): the plain-text number of orders `$filter` matches.

        Takes the list's options, read and checked the same way; `$top`, `$skip`, `$orderby`,
        `$select` and `$expand` do not change a count (OData). Customers count their own orders."""
        options = list_options(req)
        count = count_orders(self.deps.db, req.context.principal, options, secret_key=self.deps.settings.secret_key)
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = str(count)


class OrderMetricsResource:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @operation(
        "getOrderMetrics",
        tags=["orders"],
        query=MetricsQueryIn,
        replies={200: Reply(MetricsOut, "The figures of the range.")},
        errors=(403,),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Aggregated order metrics for a date range (admin and ops only).

        Definitions. The range runs from `startDate` 00:00 to the end of `endDate` (both inclusive)
        in `timezone` (IANA name, default UTC); an order belongs to it when its `createdAt` does.
        `totalOrders`: the number of orders created in the range, whatever their status.
        `totalRevenue`: the sum of `totalAmount` over those orders whose payment was captured and not
        refunded, i.e. whose `paymentStatus` is in the captured set (today: `completed`).
        `averageOrderValue`: `totalRevenue` divided by the number of those captured orders, rounded to
        the cent; 0 when there are none. `ordersByStatus`: `totalOrders` split by order status (every
        lifecycle status, zero-filled). `groups`: the same four figures per bucket of `groupBy`, with
        `key` naming the bucket: `day` (local date, YYYY-MM-DD), `week` (ISO week, keyed by its
        Monday), `month` (keyed by its first day) — time buckets are zero-filled over the range —
        `status`, or `customer` (customerId; the 1000 customers with most orders, `groupsTruncated`
        says when there were more). Money is exact: summed in SQL as integer cents, rendered with two
        decimals. `asOf` is when the figures were read.
        """
        params = parse_query(req, MetricsQueryIn)
        query = MetricsQuery(params.startDate, params.endDate, params.groupBy, params.timezone)
        send_json(resp, metrics_body(order_metrics(self.deps.db, req.context.principal, query)))


class OrderResource:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @operation(
        "getOrder",
        tags=["orders"],
        query=OrderQuery,
        replies={200: Reply(OrderOut, "The order with its items.", (ETAG,))},
        errors=(404,),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, order_id: str) -> None:
        """An order with its items; ``$expand=history`` adds the status history."""
        expand = {part.strip() for part in (req.get_param("$expand") or "").split(",") if part.strip()}
        order = get_order(self.deps.db, req.context.principal, order_id, with_history="history" in expand)
        resp.set_header("ETag", etag(order.version))
        resp.media = order_body(order)
