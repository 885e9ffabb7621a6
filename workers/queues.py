"""The queues, one per kind of work, so operators scale each worker pool on its own."""

PAYMENTS = "payments"
ORDERS = "orders"
EXPORTS = "exports"
MAINTENANCE = "maintenance"
ALL_QUEUES = (PAYMENTS, ORDERS, EXPORTS, MAINTENANCE)
