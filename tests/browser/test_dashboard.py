"""The dashboard in a real browser (headless chromium): its numbers are /stats' numbers, now and
as of a past instant; a profile opens with its explanation and timeline; nothing is fetched from
outside the engine. A screenshot is kept in test-artifacts/."""
from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, sync_playwright

from ops.bench.events import anchor_now, generate
from tests.browser.conftest import ARGS
from tests.integration.engine_process import EngineProcess

OPEN_STATES = ("new", "open", "pending", "on_hold")
LEVELS = ("inactive", "transactional", "participant", "contributor", "collaborator", "advocate", "withheld")
TIERS = ("champion", "promoter", "neutral", "detractor", "withheld")
STATES = ("new", "open", "pending", "on_hold", "solved", "closed")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    eng = EngineProcess(tmp_path_factory.mktemp("dashboard") / "data").start()
    try:
        workload = generate(3000, customers=150, seed=5)
        for start in range(0, len(workload), 1000):
            answer = httpx.post(eng.http + "/events", content=workload.ndjson(start, start + 1000),
                                headers={"content-type": "application/x-ndjson"}, timeout=60)
            assert answer.status_code == 200
        head = eng.get("/health").json()["log"]["head"]
        deadline = time.time() + 60
        while eng.get("/health").json()["projections"]["read-models"]["position"] < head:
            assert time.time() < deadline, "the projection did not catch up"
            time.sleep(0.1)
        yield eng
    finally:
        eng.kill()


@pytest.fixture
def page(chromium: Path, engine: EngineProcess) -> Iterator[tuple[Page, list[str]]]:
    """A tab, and the URLs it requested. Nothing may go wrong in the page's console (a script
    error, or anything the Content-Security-Policy refused)."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 1000})
            requested: list[str] = []
            errors: list[str] = []
            tab.on("request", lambda request: requested.append(request.url))
            tab.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            tab.on("pageerror", lambda error: errors.append(str(error)))
            yield tab, requested
            assert errors == []
        finally:
            browser.close()


def shown(tab: Page, selector: str) -> int:
    return int(tab.locator(selector).inner_text().replace(",", ""))


def assert_page_equals_stats(tab: Page, stats: dict[str, Any]) -> None:
    assert shown(tab, '[data-stat="events"]') == stats["events"]
    assert shown(tab, '[data-stat="profiles"]') == stats["profiles"]
    assert shown(tab, '[data-stat="rejected"]') == sum(stats["rejected"].values())
    assert shown(tab, '[data-stat="open_cases"]') == sum(stats["cases"].get(s, 0) for s in OPEN_STATES)
    assert shown(tab, '[data-stat="breached"]') == sum(stats["sla"].values())
    for level in LEVELS:
        assert shown(tab, f'[data-engagement="{level}"]') == stats["engagement"].get(level, 0), level
    for tier in TIERS:
        assert shown(tab, f'[data-advocacy="{tier}"]') == stats["advocacy"].get(tier, 0), tier
    for state in STATES:
        assert shown(tab, f'[data-cases="{state}"]') == stats["cases"].get(state, 0), state
    for name, n in stats["sla"].items():
        assert shown(tab, f'[data-sla="{name}"]') == n, name
    for reason, n in stats["rejected"].items():
        assert shown(tab, f'[data-rejected="{reason}"]') == n, reason


def test_the_page_shows_stats_now_and_as_of_a_past_instant(engine: EngineProcess, page: tuple[Page, list[str]],
                                                           artifacts: Path) -> None:
    tab, requested = page
    response = tab.goto(engine.http + "/")
    assert response is not None and "frame-ancestors 'none'" in response.headers["content-security-policy"]
    stats = engine.get("/stats").json()
    assert stats["events"] > 2000 and stats["profiles"] > 100  # a real picture, not zeros
    assert_page_equals_stats(tab, stats)
    assert tab.locator('[data-live="yes"]').count() == 1

    # Time travel: 30 days before the workload's last day.
    past = (anchor_now() - timedelta(days=30)).astimezone(UTC)
    tab.fill("#asof", past.strftime("%Y-%m-%dT%H:%M:%S"))
    tab.click("#asof-go")
    then = engine.get("/stats", as_of=past.isoformat()).json()
    tab.wait_for_selector(f'time[data-as-of="{then["as_of"]}"]')
    assert then["engagement"] != stats["engagement"]  # the instant matters for this workload
    assert_page_equals_stats(tab, then)
    assert tab.locator('[data-live="no"]').count() == 1
    assert "as_of=" in tab.url  # the time-travelled page can be shared

    tab.click("#asof-now")
    tab.wait_for_selector('[data-live="yes"]')
    tab.wait_for_function("() => !document.querySelector('#panels').dataset.asOf")
    assert_page_equals_stats(tab, engine.get("/stats").json())
    tab.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)
    assert all(url.startswith(engine.http) for url in requested), [u for u in requested
                                                                   if not u.startswith(engine.http)]


def test_search_opens_a_profile_with_its_explanation_and_timeline(engine: EngineProcess,
                                                                  page: tuple[Page, list[str]],
                                                                  artifacts: Path) -> None:
    tab, requested = page
    champions = engine.get("/customers", tier="champion", limit=1).json()["items"]
    assert champions, "the workload has champions"
    key = champions[0]["customer"]
    tab.goto(engine.http + "/")
    tab.fill("#search", key)
    tab.press("#search", "Enter")
    tab.wait_for_selector("[data-profile]")

    customer = engine.get(f"/customers/{key}").json()
    explain = engine.get(f"/customers/{key}/explain").json()
    assert tab.locator("[data-profile]").inner_text() == key
    assert tab.locator("[data-profile-level]").inner_text() == customer["engagement"]["level"]
    assert float(tab.locator("[data-profile-score]").inner_text()) == customer["advocacy"]["score"]
    assert tab.locator("[data-profile-tier]").inner_text() == customer["advocacy"]["tier"] == "champion"
    assert int(tab.locator("[data-contributions]").get_attribute("data-contributions") or -1) \
        == len(explain["advocacy"]["contributions"])
    assert float(tab.locator("[data-explain-total]").inner_text()) == round(explain["advocacy"]["total"], 2)
    timeline = engine.get(f"/customers/{key}/timeline", limit=25).json()["items"]
    assert tab.locator("ol.timeline li").count() == len(timeline) > 0
    tab.locator("#profile").screenshot(path=str(artifacts / "dashboard-profile.png"))

    tab.fill("#search", "nobody-at-all")
    tab.press("#search", "Enter")
    tab.wait_for_selector('[data-profile-error="not_found"]')
    assert all(url.startswith(engine.http) for url in requested)


def test_under_auth_the_browser_asks_for_the_token_as_basic_and_gets_in(chromium: Path,
                                                                       tmp_path: Path) -> None:
    """Chromium offers a login only for a Basic challenge on a line of its own: with Bearer first
    on the same line it answered 401 with no way in."""
    token = "dashboard-" + "7" * 24
    auth = tmp_path / "auth.toml"
    auth.write_text(f'[tokens.ops]\nrole = "reader"\ntoken = "{token}"\n')
    eng = EngineProcess(tmp_path / "data", extra=["--auth", str(auth)]).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(chromium), args=ARGS)
            try:
                wrong = browser.new_context(http_credentials={"username": "ops", "password": "not-it"})
                response = wrong.new_page().goto(eng.http + "/")
                assert response is not None and response.status == 401
                right = browser.new_context(http_credentials={"username": "ops", "password": token})
                tab = right.new_page()
                response = tab.goto(eng.http + "/")
                assert response is not None and response.status == 200
                assert tab.locator("h2").first.is_visible()
            finally:
                browser.close()
    finally:
        eng.kill()
