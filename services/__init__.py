"""Use cases, one package per domain. Each public function opens one transaction (or works in its
caller's); none knows about HTTP or Celery.

- ``kernel``: what every domain shares: errors, money, the caller (principal), the lifecycle rules.
- ``access``: API keys and idempotency records.
- ``jobs``: the durable side of every task: the outbox, the job kinds, states, children, progress.
- ``orders``: placing orders (stock reservation), offers, stock movements, listing, the OData
  query language, metrics.
- ``ledger``: an order's money book (payment rows and their sums) and the attempts that move money.
- ``changes``: status transitions, item actions, bulk cancellation.
- ``payments``: payment requests, their execution at the gateway, confirmation, hosted checkout,
  webhooks, reconciliation, the payment window's expiry, settlement, and the gateway adapters.
- ``exports``: CSV and XLSX files built by workers, with signed download links.
- ``maintenance``: housekeeping and readiness.

Dependencies point one way: kernel ← jobs ← orders ← ledger ← changes ← payments (and exports,
maintenance on kernel and jobs). ``tests/unit/test_import_graph.py`` fails on any import circle.
"""
