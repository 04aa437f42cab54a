"""The dashboard's routes over real HTTP: the page, its fragments and its assets."""
from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from tests.integration.engine_process import EngineProcess
from tests.samples import ev

HOSTILE = '<script>alert("x")</script>'


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    eng = EngineProcess(tmp_path_factory.mktemp("dash") / "data").start()
    try:
        body = b"\n".join([
            ev(1, "idea.voted", {"idea": "i"}, customer=HOSTILE),
            ev(2, "idea.voted", {"idea": "i"}, customer="c-gone"),
            ev(3, "customer.erased", customer="c-gone"),
            ev(4, "idea.voted", {"idea": 1}, customer=HOSTILE),  # a reject whose id names the hostile key
            (b'{"id": "' + HOSTILE.replace('"', '\\"').encode() + b'", "type": "nope"}'),
        ])
        assert httpx.post(eng.http + "/events", content=body, headers={"content-type": "application/x-ndjson"}
                          ).status_code == 200
        deadline = time.time() + 30
        while eng.get("/health").json()["projections"]["read-models"]["lag"] > 0:
            assert time.time() < deadline
            time.sleep(0.05)
        yield eng
    finally:
        eng.kill()


def test_the_page_is_html_with_the_numbers_rendered_on_the_server(engine: EngineProcess) -> None:
    page = engine.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'data-stat="events">3<' in page.text  # no script needed to see the numbers
    assert "<script>alert" not in page.text  # rejects' ids are user data: escaped
    assert "&lt;script&gt;" in page.text
    assert 'src="/dashboard/static/dashboard.js"' in page.text
    assert "http://" not in page.text.replace(engine.http, "") and "https://" not in page.text  # no CDN


def test_assets_are_served_by_the_engine_with_their_types(engine: EngineProcess) -> None:
    for name, kind in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css"),
                       ("favicon.svg", "image/svg+xml")):
        answer = engine.get(f"/dashboard/static/{name}")
        assert answer.status_code == 200 and answer.headers["content-type"].startswith(kind), name
    assert engine.get("/dashboard/static/../__init__.py").status_code == 404


def test_a_bad_as_of_or_parameter_is_a_400_naming_it(engine: EngineProcess) -> None:
    for path, params, name in (("/", {"as_of": "yesterday"}, "as_of"), ("/dashboard/panels", {"limit": "3"}, "limit"),
                               ("/dashboard/profile", {}, "key")):
        answer = engine.get(path, **params)
        assert answer.status_code == 400 and answer.json()["parameter"] == name


def test_profile_fragment_escapes_the_key_and_tells_erased_from_unknown(engine: EngineProcess) -> None:
    found = engine.get("/dashboard/profile", key=HOSTILE)
    assert found.status_code == 200 and "<script>alert" not in found.text and "&lt;script&gt;" in found.text
    erased = engine.get("/dashboard/profile", key="c-gone")
    assert erased.status_code == 200 and 'data-profile-error="erased"' in erased.text
    unknown = engine.get("/dashboard/profile", key="nobody")
    assert unknown.status_code == 200 and 'data-profile-error="not_found"' in unknown.text


def test_panels_time_travel(engine: EngineProcess) -> None:
    before = engine.get("/dashboard/panels", as_of="2000-01-01T00:00:00Z").text
    assert 'data-engagement="participant">0<' in before
    assert 'data-engagement="inactive">1<' in before  # the profile exists (SPEC §3): inactive back then
    after = engine.get("/dashboard/panels", as_of="2026-10-02T00:00:00Z").text  # a day after the vote
    assert 'data-engagement="transactional">1<' in after and 'data-engagement="inactive">0<' in after


@pytest.mark.parametrize("path", ["/health", "/", "/stats", "/customers/c-nobody", "/audit/export", "/metrics"])
def test_head_answers_as_get_does_without_a_body(engine: EngineProcess, path: str) -> None:
    """Monitors and `curl -I` probe with HEAD (RFC 9110 §9.3.2)."""
    got, head = httpx.get(engine.http + path), httpx.head(engine.http + path)
    assert head.status_code == got.status_code, (path, head.status_code, got.status_code)
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.content == b""
    if "content-length" in got.headers and path not in ("/metrics", "/health"):  # those two change between calls
        assert head.headers["content-length"] == got.headers["content-length"]


def test_a_method_not_allowed_names_the_allowed_ones(engine: EngineProcess) -> None:
    """RFC 9110 §15.5.6: a 405 carries Allow."""
    refused = httpx.put(engine.http + "/health")
    assert refused.status_code == 405
    assert set(refused.headers["allow"].split(", ")) >= {"GET", "HEAD"}
    assert refused.json()["error"] == "method_not_allowed"
    assert "PUT /health is not allowed" in refused.json()["detail"] and "GET" in refused.json()["detail"]
    events = httpx.get(engine.http + "/events")
    assert events.status_code == 405 and "POST" in events.headers["allow"].split(", ")


def test_an_identity_key_written_as_a_person_would_is_redirected_to_the_engines(engine: EngineProcess) -> None:
    """`~Twitter:@Alice` names the profile the engine keeps as `~twitter:alice` (SPEC §1, §3)."""
    engine.send(ev("redirect-1", "idea.voted", {"idea": "i"}, identity={"channel": "twitter", "handle": "Zoë"}),
                ev("redirect-2", "idea.voted", {"idea": "i"}, identity={"channel": "twitter", "handle": "@@bob"}))
    engine.caught_up()
    moved = httpx.get(engine.http + "/customers/" + quote("~Twitter:@ZOË", safe="") + "/timeline?limit=1")
    assert moved.status_code == 308, moved.text
    assert moved.headers["location"] == "/customers/" + quote("~twitter:zoë", safe="") + "/timeline?limit=1"
    assert moved.json() == {"error": "moved", "customer": "~twitter:zoë"}
    followed = httpx.get(engine.http + "/customers/" + quote("~Twitter:@ZOË", safe=""), follow_redirects=True)
    assert followed.status_code == 200 and followed.json()["customer"] == "~twitter:zoë"
    # A key that names a profile as it is given is that profile: `@@bob` keeps one @.
    exact = httpx.get(engine.http + "/customers/" + quote("~twitter:@bob", safe=""))
    assert exact.json()["customer"] == "~twitter:@bob"
    assert httpx.get(engine.http + "/customers/" + quote("~twitter:@@bob", safe="")).headers["location"] == (
        "/customers/" + quote("~twitter:@bob", safe=""))
    # Customer keys and identity keys already as the engine writes them: 404 as SPEC §7 says.
    assert httpx.get(engine.http + "/customers/C-Nobody").json() == {"error": "not_found"}
    assert httpx.get(engine.http + "/customers/" + quote("~twitter:nobody", safe="")).status_code == 404


@pytest.mark.parametrize(("host", "answered"), [
    ("attacker.example", 421), ("attacker.example:80", 421), ("127.0.0.1.nip.io", 421), ("LOCALHOST.", 200),
    ("localhost", 200), ("127.0.0.1", 200), ("[::1]", 200)])
def test_without_auth_only_requests_to_a_loopback_name_are_answered(engine: EngineProcess, host: str,
                                                                   answered: int) -> None:
    """DNS rebinding: a web page whose name resolves to 127.0.0.1 would reach every open route (a
    decrypted export, an erasure) with its own name in Host."""
    port = engine.http.rsplit(":", 1)[1]
    for path in ("/audit/export?decrypt=true", "/health"):
        r = httpx.get(engine.http + path, headers={"host": host if ":" in host.strip("[]") else f"{host}:{port}"})
        assert r.status_code == answered, (host, path, r.text)
        if answered == 421:
            assert r.json()["error"] == "bad_host"
