"""The queues, one per kind of work, so operators scale each worker pool on its own."""

PAYMENTS = "payments"
ORDERS = "orders"
EXPORTS = "exports"
MAINTENANCE = "maintenance"
# Event fan-out and webhook deliveries: a receiver that hangs only ever holds this pool's workers.
WEBHOOKS = "webhooks"
ALL_QUEUES = (PAYMENTS, ORDERS, EXPORTS, MAINTENANCE, WEBHOOKS)
