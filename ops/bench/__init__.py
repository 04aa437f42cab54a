"""Benchmarks: measured figures, never assertions (`python -m ops.bench.ingest`)."""
