"""Order and task events: written in the change's own transaction, read by clients and the
webhook dispatcher (``services.webhooks``)."""
