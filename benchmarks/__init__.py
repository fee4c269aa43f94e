"""Benchmarks for binderlite (run as modules, e.g. ``python -m benchmarks.build``)."""
