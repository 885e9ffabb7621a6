"""Stripe's webhook signature scheme: ``t=<unix>,v1=<hex HMAC-SHA256 of "{t}.{body}">``."""

from __future__ import annotations

import hashlib
import hmac
import time

from services.payments.gateways.base import WebhookSignatureError


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The signature header value for ``payload`` at ``timestamp`` (now by default)."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    digest = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify(payload: bytes, header: str | None, secret: str, tolerance: int, now: float | None = None) -> int:
    """Check the header against ``payload``; returns its timestamp or raises WebhookSignatureError."""
    if not header:
        raise WebhookSignatureError("missing signature header")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise WebhookSignatureError("malformed timestamp") from None
        elif name == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise WebhookSignatureError("malformed signature header")
    expected = sign(payload, secret, timestamp).split("v1=", 1)[1]
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise WebhookSignatureError("signature does not match the payload")
    current = time.time() if now is None else now
    if tolerance > 0 and timestamp < current - tolerance:
        raise WebhookSignatureError(f"timestamp older than {tolerance} seconds")
    if tolerance > 0 and timestamp > current + tolerance:
        raise WebhookSignatureError("timestamp too far in the future")
    return timestamp
