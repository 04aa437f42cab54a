"""The HTTP API fuzzed from its own OpenAPI document (schemathesis) against a running engine:
no answer is a 500, every error has a JSON body, and every answer is one the document describes.
As admin (every route open) and anonymous (every route refused but /health and /schema)."""
from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import response_schema_conformance, status_code_conformance
from schemathesis.core.result import Ok

from tests.integration.engine_process import EngineProcess
from tests.samples import outcome_cases

ADMIN = "admin-" + secrets.token_hex(16)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    tmp = tmp_path_factory.mktemp("fuzz")
    auth = tmp / "auth.toml"
    auth.write_text(f'[tokens.fuzzer]\nrole = "admin"\ntoken = "{ADMIN}"\n')
    eng = EngineProcess(tmp / "data", extra=["--auth", str(auth)]).start()
    try:
        body = b"\n".join(raw for raw, _ in outcome_cases())
        assert httpx.post(eng.http + "/events", content=body, headers={
            "authorization": f"Bearer {ADMIN}", "content-type": "application/x-ndjson"}).status_code == 200
        deadline = time.time() + 30
        while httpx.get(eng.http + "/health").json()["projections"]["read-models"]["lag"] > 0:
            assert time.time() < deadline
            time.sleep(0.05)
        yield eng
    finally:
        eng.kill()


def check(response: schemathesis.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        assert response.headers["content-type"][0].startswith("application/json"), response.headers
        assert isinstance(response.json(), dict)


def test_fuzzed_calls_never_fail_the_server_and_errors_are_json(engine: EngineProcess) -> None:
    """Every operation of the document, with generated parameters and bodies (schemathesis'
    strategies driven by hypothesis here: its pytest plugin does not run on this pytest)."""
    api = schemathesis.openapi.from_url(engine.http + "/schema/openapi.json")
    results = list(api.get_all_operations())
    assert [r for r in results if not isinstance(r, Ok)] == []  # the document itself is valid
    operations = [r.ok() for r in results if isinstance(r, Ok)]
    assert len(operations) >= 15  # every call of SPEC §7 and the ops surface is documented
    calls: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case: schemathesis.Case[Any]) -> None:
            calls.append(case.formatted_path)
            for headers in ({"authorization": f"Bearer {ADMIN}"}, {}):  # as admin, and anonymous
                response = case.call(base_url=engine.http, headers=headers, timeout=30)
                check(response)
                case.validate_response(response, checks=[response_schema_conformance, status_code_conformance])

        fuzz()
    assert len(calls) > 150 and any("%" in path or "/" in path[len("/customers/"):] for path in calls)
