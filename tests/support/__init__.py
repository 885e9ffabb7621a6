"""Shared test machinery: databases, Redis, worker processes, polling."""
