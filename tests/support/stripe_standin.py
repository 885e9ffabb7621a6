"""A local stand-in for the handful of Stripe API endpoints the stripe adapter uses.

A small threaded ``http.server`` speaking Stripe's wire format: form-encoded requests with
bracketed keys (``metadata[orderId]=…``), JSON objects with ``"object": "payment_intent"`` etc.,
card errors as HTTP 402 with an ``error`` object, and ``Idempotency-Key`` honoured (a repeated key
replays the first response with ``Idempotent-Replayed: true``). Test card tokens behave as in
Stripe's test mode; ``tok_gatewayUnavailable`` answers 500 and ``tok_timeout`` answers too late.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

DECLINES = {"tok_chargeDeclined": "generic_decline", "tok_insufficientFunds": "insufficient_funds"}
API_KEY_PREFIX = "sk_test_"


def parse_form(body: str) -> dict[str, Any]:
    """``a[b][0]=x`` → ``{"a": {"b": {"0": "x"}}}`` (lists stay index-keyed dicts)."""
    result: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = key.replace("]", "").split("[")
        node = result
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return result


class StripeStandIn:
    def __init__(self, timeout_delay: float = 2.0) -> None:
        self.timeout_delay = timeout_delay
        self.intents: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.idempotent: dict[str, tuple[int, dict[str, Any]]] = {}
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> StripeStandIn:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- what tests look at ------------------------------------------------------------------
    def intents_created(self, order_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [i for i in self.intents.values() if order_id is None or i["metadata"].get("orderId") == order_id]

    def complete_session(self, session_id: str) -> dict[str, Any]:
        """The customer paid on the hosted page: the session completes with a new PaymentIntent."""
        with self.lock:
            session = self.sessions[session_id]
            intent = self._new_intent(session["amount_total"], "usd", dict(session["metadata"]), capture=True)
            intent["status"], intent["amount_received"] = "succeeded", intent["amount"]
            session.update(status="complete", payment_status="paid", payment_intent=intent["id"])
            return {
                "id": f"evt_{secrets.token_hex(8)}",
                "object": "event",
                "api_version": "2024-06-20",
                "created": int(time.time()),
                "type": "checkout.session.completed",
                "data": {"object": dict(session)},
            }

    # -- the API ---------------------------------------------------------------------------------
    def _new_intent(self, amount: int, currency: str, metadata: dict[str, Any], capture: bool) -> dict[str, Any]:
        intent = {
            "id": f"pi_{secrets.token_hex(12)}",
            "object": "payment_intent",
            "amount": amount,
            "amount_received": 0,
            "amount_capturable": 0,
            "currency": currency,
            "capture_method": "automatic" if capture else "manual",
            "status": "requires_payment_method",
            "metadata": metadata,
            "last_payment_error": None,
            "livemode": False,
            "created": int(time.time()),
        }
        self.intents[intent["id"]] = intent
        return intent

    def _create_intent(self, form: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        token = ((form.get("payment_method_data") or {}).get("card") or {}).get("token", "")
        if token == "tok_timeout":
            time.sleep(self.timeout_delay)
        if token == "tok_gatewayUnavailable":
            return 500, {"error": {"type": "api_error", "message": "An unknown error occurred."}}
        capture = form.get("capture_method", "automatic") != "manual"
        intent = self._new_intent(int(form["amount"]), form["currency"], dict(form.get("metadata") or {}), capture)
        if token in DECLINES:
            error = {"code": "card_declined", "decline_code": DECLINES[token], "message": "Your card was declined."}
            intent["last_payment_error"] = {**error, "type": "card_error"}
            return 402, {"error": {**error, "type": "card_error", "payment_intent": dict(intent)}}
        if capture:
            intent["status"], intent["amount_received"] = "succeeded", intent["amount"]
        else:
            intent["status"], intent["amount_capturable"] = "requires_capture", intent["amount"]
        return 200, dict(intent)

    def _intent_action(self, intent_id: str, action: str, form: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        intent = self.intents.get(intent_id)
        if intent is None:
            return 404, {"error": {"type": "invalid_request_error", "code": "resource_missing"}}
        if intent["status"] != "requires_capture":
            return 400, {"error": {"type": "invalid_request_error", "code": "payment_intent_unexpected_state"}}
        if action == "capture":
            amount = int(form.get("amount_to_capture") or intent["amount_capturable"])
            intent.update(status="succeeded", amount_received=amount, amount_capturable=0)
        else:
            intent.update(status="canceled", amount_capturable=0)
        return 200, dict(intent)

    def _create_refund(self, form: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        intent = self.intents.get(form.get("payment_intent", ""))
        if intent is None or intent["status"] != "succeeded":
            return 400, {"error": {"type": "invalid_request_error", "code": "charge_not_refundable"}}
        refunded = sum(r["amount"] for r in self.refunds.values() if r["payment_intent"] == intent["id"])
        amount = int(form.get("amount") or intent["amount_received"] - refunded)
        if amount > intent["amount_received"] - refunded:
            return 400, {"error": {"type": "invalid_request_error", "code": "amount_too_large"}}
        refund = {
            "id": f"re_{secrets.token_hex(12)}",
            "object": "refund",
            "amount": amount,
            "currency": intent["currency"],
            "payment_intent": intent["id"],
            "status": "succeeded",
        }
        self.refunds[refund["id"]] = refund
        return 200, dict(refund)

    def _create_session(self, form: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        item = form["line_items"]["0"]
        session_id = f"cs_test_{secrets.token_hex(12)}"
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": form.get("mode"),
            "url": f"{self.url}/c/pay/{session_id}",
            "status": "open",
            "payment_status": "unpaid",
            "amount_total": int(item["price_data"]["unit_amount"]) * int(item.get("quantity", 1)),
            "currency": item["price_data"]["currency"],
            "client_reference_id": form.get("client_reference_id"),
            "metadata": dict(form.get("metadata") or {}),
            "payment_intent": None,
            "success_url": form.get("success_url"),
            "cancel_url": form.get("cancel_url"),
            "expires_at": int(form.get("expires_at", 0)),
        }
        self.sessions[session_id] = session
        return 200, dict(session)

    def route(self, method: str, path: str, headers: dict[str, str], body: str) -> tuple[int, dict[str, Any], bool]:
        if not headers.get("authorization", "").startswith(f"Bearer {API_KEY_PREFIX}"):
            return 401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}, False
        form = parse_form(body) if method == "POST" else {}
        key = headers.get("idempotency-key") if method == "POST" else None
        with self.lock:
            self.requests.append({"method": method, "path": path, "headers": headers, "form": form})
            if key and key in self.idempotent:
                status, payload = self.idempotent[key]
                return status, payload, True
        # (the timeout token sleeps outside the lock)
        parts = [p for p in path.split("/") if p]
        if method == "POST" and parts == ["v1", "payment_intents"]:
            status, payload = self._create_intent(form)
        else:
            with self.lock:
                status, payload = self._dispatch(method, parts, form)
        if key and status < 500:
            with self.lock:
                self.idempotent.setdefault(key, (status, payload))
                status, payload = self.idempotent[key]
        return status, payload, False

    def _dispatch(self, method: str, parts: list[str], form: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if method == "POST" and len(parts) == 4 and parts[1] == "payment_intents" and parts[3] in ("capture", "cancel"):
            return self._intent_action(parts[2], parts[3], form)
        if method == "GET" and len(parts) == 3 and parts[1] == "payment_intents" and parts[2] in self.intents:
            return 200, dict(self.intents[parts[2]])
        if method == "POST" and parts == ["v1", "refunds"]:
            return self._create_refund(form)
        if method == "POST" and parts == ["v1", "checkout", "sessions"]:
            return self._create_session(form)
        if method == "GET" and len(parts) == 4 and parts[1:3] == ["checkout", "sessions"] and parts[3] in self.sessions:
            return 200, dict(self.sessions[parts[3]])
        if method == "POST" and len(parts) == 5 and parts[1:3] == ["checkout", "sessions"] and parts[4] == "expire":
            return self._expire_session(parts[3])
        return 404, {"error": {"type": "invalid_request_error", "code": "resource_missing"}}

    def _expire_session(self, session_id: str) -> tuple[int, dict[str, Any]]:
        session = self.sessions.get(session_id)
        if session is None:
            return 404, {"error": {"type": "invalid_request_error", "code": "resource_missing"}}
        if session["status"] != "open":
            message = "Only Checkout Sessions with a status of `open` can be expired."
            return 400, {"error": {"type": "invalid_request_error", "message": message}}
        session["status"] = "expired"
        return 200, dict(session)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, payload, replayed = standin.route(method, urlsplit(self.path).path, headers, body)
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("Request-Id", f"req_{secrets.token_hex(6)}")
                    if replayed:
                        self.send_header("Idempotent-Replayed", "true")
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (the timeout test)

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        return Handler
