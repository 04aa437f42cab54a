"""`GET /metrics` in Prometheus text format (prometheus-client)."""
from __future__ import annotations

from typing import Any

from engine.ingest import Ingest
from engine.log import Log
from projections.reads import Reads
from projections.runner import Runner, RunnerProcess


def metrics_surface(log_: Log, ingest: Ingest | None, reads: Reads | None,
                    runner: Runner | RunnerProcess | None) -> tuple[list[Any], list[Any]]:
    """(route handlers, middleware) of the metrics surface."""
    return [], []
