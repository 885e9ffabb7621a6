"""Payments: ``POST /api/orders/payment``, the checkout redirect and return, and gateway webhooks."""

from __future__ import annotations

import html

import falcon

from api.async_answer import answer_job
from api.deps import Deps
from api.openapi import LOCATION, PREFER, RETRY_AFTER, Reply, operation, queued
from api.schemas import CheckoutPendingOut, ErrorOut, PaymentIn, PaymentResultOut, WebhookAckOut
from api.validation import parse_body
from services.payments.checkout import checkout_url, complete_checkout
from services.payments.requests import PaymentRequest, request_payment
from services.payments.webhooks import receive_webhook

CHECKOUT_RETRY_AFTER_SECONDS = 1


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>"
        + html.escape(title)
        + "</title><style>body{font-family:sans-serif;margin:3em}</style></head><body>"
        + body
        + "</body></html>"
    )


class PaymentResource:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @operation(
        "processPayment",
        tags=["payments"],
        json=PaymentIn,
        idempotent=True,
        request_headers=(PREFER,),
        replies={
            **queued(PaymentResultOut, "the brief's payment answer."),
            402: Reply(ErrorOut, "With `Prefer: wait=N`: PAYMENT_FAILED, the gateway declined (`details[0].reason`)."),
        },
        errors=(403, 404),
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Queue a payment action (process, authorize, capture, void, refund); honours ``Prefer: wait=N``.

        A customer key may pay, authorize, capture and void its own orders; ``refund`` is for admin
        and ops keys (403 ``FORBIDDEN`` for customers)."""
        body = parse_body(req, PaymentIn)
        details = body.paymentDetails
        queued = request_payment(
            self.deps.db,
            req.context.principal,
            PaymentRequest(
                order_id=body.orderId,
                action=body.action,
                method=details.method if details else "",
                token=details.token if details else None,
                amount=details.amount if details else None,
            ),
            request_id=req.context.request_id,
        )
        self.deps.sender.send(queued.job, request_id=req.context.request_id)
        answer_job(req, resp, self.deps.db, queued.job.job_id, self.deps.notices)


class CheckoutRedirectResource:
    """Where ``paymentUrl`` points; public, because a browser follows it (order ids are unguessable)."""

    public = True

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @operation(
        "openCheckout",
        tags=["payments"],
        public=True,
        replies={
            303: Reply(description="To the gateway's hosted checkout page.", headers=(LOCATION,)),
            202: Reply(CheckoutPendingOut, "The checkout task has not opened the session yet.", (RETRY_AFTER,)),
        },
        errors=(404, 503),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, order_id: str) -> None:
        """303 to the gateway's hosted checkout once it exists; 202 + ``Retry-After`` before."""
        url = checkout_url(self.deps.db, order_id)
        if url is None:
            resp.status = falcon.HTTP_202
            resp.set_header("Retry-After", str(CHECKOUT_RETRY_AFTER_SECONDS))
            resp.media = {"orderId": order_id, "status": "preparing_checkout"}
            return
        resp.status = falcon.HTTP_303
        resp.location = url


class CheckoutCompleteResource:
    """The gateway's ``success_url``: ask the gateway and confirm the order (races the webhook safely)."""

    public = True

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def on_get(self, req: falcon.Request, resp: falcon.Response, order_id: str) -> None:
        session_id = req.get_param("session_id", required=True)
        status = complete_checkout(self.deps.db, self.deps.gateways, order_id, session_id)
        if status.jobs:
            self.deps.sender.send_all(status.jobs, request_id=req.context.request_id)
        resp.content_type = falcon.MEDIA_HTML
        message = "Payment received." if status.payment_status == "completed" else "Payment not confirmed yet."
        resp.text = _page(
            "Order " + status.order_id,
            f"<h1>{html.escape(message)}</h1><p>Order <code>{html.escape(status.order_id)}</code> is "
            f"<strong id='order-status'>{html.escape(status.status)}</strong>.</p>",
        )


class CheckoutCancelledResource:
    public = True

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def on_get(self, req: falcon.Request, resp: falcon.Response, order_id: str) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.text = _page(
            "Checkout cancelled",
            f"<h1>Payment not completed</h1><p>Order <code>{html.escape(order_id)}</code> awaits payment.</p>",
        )


class WebhookResource:
    """Signed gateway events; public (the signature is the authentication)."""

    public = True

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @operation(
        "receiveGatewayWebhook",
        tags=["payments"],
        public=True,
        replies={200: Reply(WebhookAckOut, "Verified and stored.")},
        errors=(404, 413, 503),
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response, gateway_id: str) -> None:
        """Verify, store once, apply; an event for something not visible yet is kept and applied later."""
        headers = {name.lower(): value for name, value in req.headers.items()}
        outcome = receive_webhook(
            self.deps.db,
            self.deps.gateways,
            gateway_id,
            req.context.raw_body,
            headers,
            request_id=req.context.request_id,
        )
        if outcome.jobs:
            self.deps.sender.send_all(outcome.jobs, request_id=req.context.request_id)
        resp.media = {"received": True, "eventId": outcome.event_id, "status": outcome.state}
