"""Use cases. Each public function opens one transaction; none knows about HTTP or Celery."""
