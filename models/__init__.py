"""SQLAlchemy models, engines and migrations."""

from models.api_keys import ApiKey
from models.base import Base
from models.db import Database
from models.events import Event, WebhookDelivery, WebhookEndpoint
from models.exports import Export
from models.idempotency import IdempotencyRecord
from models.jobs import Job
from models.offers import Offer
from models.orders import Order, OrderItem, StatusHistory
from models.payments import Payment, SandboxLedgerEntry, WebhookEvent
from models.reconciliation import ReconciliationReport

__all__ = [
    "ApiKey",
    "Base",
    "Database",
    "Event",
    "Export",
    "IdempotencyRecord",
    "Job",
    "Offer",
    "Order",
    "OrderItem",
    "Payment",
    "ReconciliationReport",
    "SandboxLedgerEntry",
    "StatusHistory",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
]
