"""Domain errors raised by the use cases; ``api/errors.py`` maps each to a code and status once."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error a client may see; ``details`` is a JSON-ready list."""

    code = "INTERNAL_ERROR"
    default_message = "The request could not be completed."

    def __init__(self, message: str | None = None, details: list[Any] | None = None) -> None:
        self.message = message or self.default_message
        self.details = details or []
        super().__init__(self.message)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form stored on failed jobs and rendered in error envelopes."""
        return {"code": self.code, "message": self.message, "details": self.details}


class ValidationFailed(DomainError):
    code = "VALIDATION_ERROR"
    default_message = "The request body is not valid."


class ExportExpired(DomainError):
    code = "EXPORT_EXPIRED"
    default_message = "This export link has expired; request a new export."


class OrderNotFound(DomainError):
    code = "ORDER_NOT_FOUND"
    default_message = "Order does not exist."


class OfferNotFound(DomainError):
    code = "OFFER_NOT_FOUND"
    default_message = "An order item names an unknown offer."


class PriceMismatch(DomainError):
    code = "PRICE_MISMATCH"
    default_message = "An item's price differs from the offer's current price."


class InsufficientInventory(DomainError):
    code = "INSUFFICIENT_INVENTORY"
    default_message = "Not enough stock."


class InvalidTransition(DomainError):
    code = "INVALID_STATUS"
    default_message = "Invalid order status."


class ItemNotFound(DomainError):
    """A request body names an item that is not part of the order (like ``OFFER_NOT_FOUND``: 400)."""

    code = "ITEM_NOT_FOUND"
    default_message = "An item named in the request is not part of this order."


class PaymentDeclined(DomainError):
    code = "PAYMENT_FAILED"
    default_message = "Payment processing failed."


class WebhookRejected(DomainError):
    """A webhook whose signature is missing or wrong, or whose timestamp is outside the tolerance."""

    code = "INVALID_SIGNATURE"
    default_message = "The webhook signature could not be verified."


class TaskNotFound(DomainError):
    code = "TASK_NOT_FOUND"
    default_message = "Task does not exist."


class ResourceNotFound(DomainError):
    code = "NOT_FOUND"
    default_message = "Resource does not exist."


class Unauthorized(DomainError):
    code = "UNAUTHORIZED"
    default_message = "A valid API key is required (Authorization: Bearer <key>)."


class Forbidden(DomainError):
    code = "FORBIDDEN"
    default_message = "This API key's role does not allow this operation."


class IdempotencyKeyReused(DomainError):
    code = "IDEMPOTENCY_KEY_REUSED"
    default_message = "This Idempotency-Key was used with a different request."


class IdempotencyKeyInUse(DomainError):
    code = "IDEMPOTENCY_KEY_IN_USE"
    default_message = "A request with this Idempotency-Key is still being processed."


class PreconditionFailed(DomainError):
    code = "PRECONDITION_FAILED"
    default_message = "If-Match names a stale version."


class PayloadTooLarge(DomainError):
    code = "PAYLOAD_TOO_LARGE"
    default_message = "The request body is too large."


class RateLimited(DomainError):
    code = "RATE_LIMITED"
    default_message = "This API key is over its rate limit; retry after Retry-After seconds."


class ServiceUnavailable(DomainError):
    code = "SERVICE_UNAVAILABLE"
    default_message = "A backing service is unreachable; retry later."


class TransientError(Exception):
    """A failure worth retrying (a gateway timeout, a dropped connection); never shown as is."""


class InvalidQuery(DomainError):
    """A ``$filter``/``$orderby``/``$top``/``$skip``/... the service cannot accept.

    ``details`` carries one entry per problem: ``{"parameter", "position", "message"}``, where
    ``position`` is the 0-based character offset in that parameter's (decoded) value.
    """

    code = "INVALID_QUERY"
    default_message = "The query cannot be accepted."

    @classmethod
    def at(cls, parameter: str, position: int, message: str) -> InvalidQuery:
        """The usual single-problem error: ``InvalidQuery.at("$filter", 12, "unknown field 'foo'")``."""
        return cls(
            f"{parameter}: {message} (at position {position})",
            details=[{"parameter": parameter, "position": position, "message": message}],
        )


class ConcurrentUpdate(TransientError):
    """A conditional update found the row changed under it; the use case may simply run again."""
