"""Benchmark harness (run as scripts: ``python -m bench.export``)."""
