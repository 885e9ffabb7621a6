"""Benchmark harness (see bench/list_orders.py)."""
