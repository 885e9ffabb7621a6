"""Webhook endpoints, the dispatcher that turns events into deliveries, and the deliveries."""
