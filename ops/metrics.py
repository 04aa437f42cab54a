"""`GET /metrics` in Prometheus text format, through prometheus-client (the reference client).

Each app has a registry of its own (tests build several apps in one process). What the engine
already counts is read when scraped (a custom collector: outcomes per path, log head, projection
position and lag); what happens over time is observed as it happens (commit latency, request
durations). Requests are labelled by their route's template, never by the raw path: keys are
unbounded.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from litestar import Request, Response, get
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from engine.ingest import Ingest
from engine.log import Log
from ops.read_api import refuse_parameters
from projections.reads import Reads
from projections.runner import Following

# Litestar adds "; charset=utf-8" to a text type itself (given here too, it came twice).
CONTENT_TYPE = "text/plain; version=0.0.4"
# Commits fsync: from a fraction of a millisecond (a small batch) to seconds (a disk under load).
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PROJECTION = "read-models"


class _EngineCollector(Collector):
    """Counts the engine keeps anyway, read at scrape time."""

    def __init__(self, log_: Log, ingest: Ingest | None, runner: Following | None) -> None:
        self._log, self._ingest, self._runner = log_, ingest, runner

    def collect(self) -> Iterator[Metric]:
        # The runner's position before the head; it can still fold a record before the writer's
        # answer gives the engine that head: then its lag is 0 (see /health).
        position = None if self._runner is None else self._runner.position
        head = self._log.head.position
        yield GaugeMetricFamily("engage_log_head_position", "Position of the newest event in the log", value=head)
        events = CounterMetricFamily("engage_events", "Inputs decided since the engine started, by path and "
                                     "outcome (accepted, duplicate, redelivered, or the reject reason)",
                                     labels=["path", "outcome"])
        if self._ingest is not None:
            for (path, outcome), n in sorted(self._ingest.outcomes.items()):
                events.add_metric([path, outcome], n)
        yield events
        if self._ingest is not None:
            yield CounterMetricFamily("engage_ingest_failures", "Groups of inputs the log could not commit (nothing "
                                      "of them kept; producers were told to retry)", value=self._ingest.failures)
            yield GaugeMetricFamily("engage_ingest_waiting_seconds", "How long the oldest commit in flight has "
                                    "waited for the log (0 when none is)", value=self._ingest.waiting_for_log())
        if self._runner is not None and position is not None:
            yield _projection_gauge("engage_projection_position", "Log position the projection has committed",
                                    position)
            yield _projection_gauge("engage_projection_lag", "Events of the log not yet in the projection",
                                    max(0, head - position))
            errors = GaugeMetricFamily("engage_projection_up", "1 while the projection runner reports no error",
                                       labels=["projection"])
            errors.add_metric([PROJECTION], 1 if self._runner.error is None else 0)
            yield errors


def _projection_gauge(name: str, documentation: str, value: int) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(name, documentation, labels=["projection"])
    gauge.add_metric([PROJECTION], value)
    return gauge


class RequestTimer(ASGIMiddleware):
    """Observes each HTTP request's duration, labelled by route template, method and status."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, histogram: Histogram) -> None:
        self.histogram = histogram

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        started = time.perf_counter()
        status = 500  # what the client sees if the app raises before answering

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await next_app(scope, receive, sending)
        finally:
            route = str(scope.get("path_template") or "unmatched")
            self.histogram.labels(route, scope.get("method", ""), str(status)).observe(
                time.perf_counter() - started)


def metrics_surface(log_: Log, ingest: Ingest | None, reads: Reads | None,
                    runner: Following | None) -> tuple[list[Any], list[Any]]:
    """(route handlers, middleware) of the metrics surface. `reads` is unused: a read-only server's
    projection stands still, and /health reports its position."""
    registry = CollectorRegistry()
    registry.register(_EngineCollector(log_, ingest, runner))
    ProcessCollector(registry=registry)  # the engine process's memory, CPU, open files (process_*)
    requests = Histogram("engage_http_request_duration_seconds", "HTTP requests by route template, method, status",
                         ["route", "method", "status"], registry=registry)
    if ingest is not None:
        commits = Histogram("engage_ingest_commit_seconds", "Time to decide and durably commit one batch of inputs",
                            buckets=COMMIT_BUCKETS, registry=registry)
        sizes = Histogram("engage_ingest_batch_inputs", "Inputs per committed batch",
                          buckets=(1, 10, 100, 500, 1000, 2000, 4096), registry=registry)

        def observe(seconds: float, size: int) -> None:
            commits.observe(seconds)
            sizes.observe(size)

        ingest.on_commit.append(observe)

    @get("/metrics", summary="Prometheus text format", include_in_schema=True, sync_to_thread=False)
    def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
        if (refused := refuse_parameters(request)) is not None:  # as every call: a 400 naming it
            return refused
        return Response(generate_latest(registry), media_type=CONTENT_TYPE)

    return [metrics], [RequestTimer(requests)]
