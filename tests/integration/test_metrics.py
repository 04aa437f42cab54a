"""GET /metrics of a real engine, parsed with prometheus-client's own text parser."""
from __future__ import annotations

import time
from urllib.parse import quote

import httpx
import nats
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.engine_process import EngineProcess
from tests.samples import ev


def scrape(eng: EngineProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics: (name, sorted labels) -> value."""
    answer = eng.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"  # the format's own, once
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def events_total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], path: str, outcome: str) -> float:
    return samples.get(("engage_events_total", (("outcome", outcome), ("path", path))), 0.0)


async def test_metrics_count_each_outcome_per_path_and_report_head_and_lag(engine: EngineProcess) -> None:
    body = b"\n".join([
        ev(1, "idea.voted", {"idea": "i-1"}), ev(2, "idea.voted", {"idea": "i-2"}),
        ev(1, "idea.voted", {"idea": "i-1"}),  # duplicate
        ev(3, "idea.voted", {"idea": 7}),  # schema
        b"not json",  # malformed
    ])
    answer = httpx.post(engine.http + "/events", content=body, headers={"content-type": "application/x-ndjson"})
    assert answer.status_code == 200
    nc = await nats.connect(engine.nats)
    js = nc.jetstream()
    for k in range(3):
        await js.publish("touchpoints.test", ev(f"n{k}", "idea.voted", {"idea": "i"}),
                         headers={"Nats-Msg-Id": f"e-n{k}"})
    await js.publish("touchpoints.test", b'{"type": "nope"}')
    await nc.close()
    engine.wait_for_head(5)
    deadline = time.time() + 30
    samples = scrape(engine)
    while events_total(samples, "nats", "unknown_type") < 1 and time.time() < deadline:
        time.sleep(0.1)
        samples = scrape(engine)

    assert events_total(samples, "http", "accepted") == 2
    assert events_total(samples, "http", "duplicate") == 1
    assert events_total(samples, "http", "schema") == 1
    assert events_total(samples, "http", "malformed") == 1
    assert events_total(samples, "nats", "accepted") == 3
    assert events_total(samples, "nats", "unknown_type") == 1

    health = engine.get("/health").json()
    assert samples[("engage_log_head_position", ())] == health["log"]["head"] == 5
    while samples[("engage_projection_lag", (("projection", "read-models"),))] > 0 and time.time() < deadline:
        time.sleep(0.1)
        samples = scrape(engine)
    assert samples[("engage_projection_position", (("projection", "read-models"),))] == 5
    assert samples[("engage_projection_lag", (("projection", "read-models"),))] == 0
    assert samples[("engage_projection_up", (("projection", "read-models"),))] == 1
    assert samples[("process_resident_memory_bytes", ())] > 10 * 2**20  # the engine process's own

    # Every committed group was observed: the batch histogram counted all 9 decided inputs (5 over HTTP, 4 over NATS).
    assert samples[("engage_ingest_batch_inputs_sum", ())] == 9
    assert samples[("engage_ingest_commit_seconds_count", ())] == samples[("engage_ingest_batch_inputs_count", ())]
    assert samples[("engage_ingest_commit_seconds_count", ())] >= 2  # one HTTP body, at least one NATS batch


def test_request_durations_are_labelled_by_route_template_not_by_key(engine: EngineProcess) -> None:
    for key in ("c-1", "c-2", "~twitter:alice", "a/b%c"):
        engine.get("/customers/" + quote(key, safe=""))
    engine.get("/stats")
    engine.get("/no/such/route")
    samples = scrape(engine)
    routes = {dict(labels)["route"] for (name, labels) in samples
              if name == "engage_http_request_duration_seconds_count"}
    assert "/customers/{rest}" in routes and "/stats" in routes
    assert not any("c-1" in route or "alice" in route for route in routes)
    customer_404s = samples[("engage_http_request_duration_seconds_count",
                             (("method", "GET"), ("route", "/customers/{rest}"), ("status", "404")))]
    assert customer_404s == 4  # unknown profiles answer 404, all under one label
