"""Who may call, and calling twice: API keys (stored hashed) and ``Idempotency-Key`` records."""
