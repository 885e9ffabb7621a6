"""The sandbox gateway's hosted checkout page: plain HTML with Pay and Decline buttons.

It stands for the gateway's own site (Stripe Checkout), so it is public and lives outside /api.
"""

from __future__ import annotations

import html

import falcon

from api.deps import Deps
from services.kernel.errors import ResourceNotFound
from services.payments.gateways.base import GatewayDeclined
from services.payments.gateways.sandbox.gateway import SandboxGateway


def _gateway(deps: Deps, session_id: str, key: str) -> SandboxGateway:
    """The session's gateway, when ``key`` is the session's page secret; else it does not exist."""
    gateway = deps.gateways.sandbox_for_session(session_id)
    if gateway is None or not gateway.opens_with(session_id, key):
        raise ResourceNotFound("Unknown checkout session.", details=[{"sessionId": session_id}])
    return gateway


class SandboxCheckoutPageResource:
    public = True

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def on_get(self, req: falcon.Request, resp: falcon.Response, key: str, session_id: str) -> None:
        page = _gateway(self.deps, session_id, key).hosted_page(session_id)
        assert page is not None
        amount = f"{page.amount} {html.escape(page.currency)}"
        base = html.escape(SandboxGateway.page_path(page.session_id, key))
        notice = ""
        if req.get_param("declined"):
            notice = "<p id='notice' style='color:#b00'>The card was declined. Try again.</p>"
        if page.status == "open":
            actions = (
                f"<form method='post' action='{base}/pay'>"
                f"<button id='pay' type='submit'>Pay {amount}</button></form>"
                f"<form method='post' action='{base}/decline'>"
                "<button id='decline' type='submit'>Decline</button></form>"
            )
        elif page.status == "complete":
            back = html.escape(page.success_url.replace("{CHECKOUT_SESSION_ID}", page.session_id))
            actions = f"<p id='done'>Paid. <a href='{back}'>Back to the shop</a></p>"
        else:
            actions = f"<p id='closed'>This checkout session is {html.escape(page.status)}.</p>"
        resp.content_type = falcon.MEDIA_HTML
        resp.text = (
            "<!doctype html><html><head><meta charset='utf-8'><title>Sandbox checkout</title>"
            "<style>body{font-family:sans-serif;margin:3em}button{font-size:1.2em;margin:.5em 0}</style>"
            "</head><body><h1>Sandbox checkout</h1>"
            f"<p>Order <code id='order'>{html.escape(page.order_id or '')}</code></p>"
            f"<p>Amount <strong id='amount'>{amount}</strong></p>{notice}{actions}</body></html>"
        )


class SandboxCheckoutActionResource:
    public = True

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def on_post(self, req: falcon.Request, resp: falcon.Response, key: str, session_id: str, decision: str) -> None:
        gateway = _gateway(self.deps, session_id, key)
        resp.status = falcon.HTTP_303
        declined = f"{SandboxGateway.page_path(session_id, key)}?declined=1"
        if decision == "pay":
            try:
                resp.location = gateway.pay_hosted(session_id)
            except GatewayDeclined:
                resp.location = declined
        elif decision == "decline":
            gateway.decline_hosted(session_id)
            resp.location = declined
        else:
            raise ResourceNotFound(details=[{"decision": decision}])
