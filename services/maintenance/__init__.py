"""Keeping the service tidy and knowing it is up: housekeeping of expired rows and files, and
readiness of the database."""
