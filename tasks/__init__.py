"""Celery tasks: thin, idempotent, take job ids, call services."""
