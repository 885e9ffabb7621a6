"""The Celery app: queues, routes, retry policy, beat schedule, worker process init."""
