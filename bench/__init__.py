"""Benchmark harness: ``make bench`` runs every workload (see bench/README.md)."""
