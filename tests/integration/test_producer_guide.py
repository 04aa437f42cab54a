"""docs/producers.md: its example scripts work against a real engine, and it says what the code does."""
from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec

from commands.outcomes import REASONS
from commands.touchpoints import CATALOGUE, PERSONAL_FIELDS
from engine import jetstream
from engine.natsserver import NatsServer
from tests.integration.engine_process import EngineProcess, engage

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "producers.md"
EXAMPLES = REPO / "docs" / "examples"


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run an example as its reader would: a plain script, from the repository root."""
    return subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO)


def load_example(name: str) -> ModuleType:
    """The script as a module, to rebuild the events it sends from the run id it printed."""
    spec = importlib.util.spec_from_file_location(f"example_{name.removesuffix('.py')}", EXAMPLES / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def exported(data: Path) -> list[dict[str, Any]]:
    r = engage("export", "--data", str(data), "--decrypt")
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def as_logged(sent: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """What the log should hold for `sent`: identities normalised (SPEC §1), personal fields read
    back through `personal` (they are ciphertext in the record), `occurred_at` as the log has it."""
    want = {k: v for k, v in sent.items() if k != "occurred_at"}
    if "identity" in want:
        identity = want["identity"]
        want["identity"] = {"channel": identity["channel"].lower(),
                            "handle": identity["handle"].removeprefix("@").casefold()}
    got = {k: v for k, v in record["event"].items() if k != "occurred_at"}
    got["data"] = {**got.get("data", {}), **record.get("personal", {})}
    return {"want": want, "got": got}


def assert_clean(r: subprocess.CompletedProcess[str]) -> None:
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr


def test_examples_send_their_events_to_a_real_engine(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path / "data")
    try:
        engine.start()
        started = datetime.now(UTC)

        # --- NATS: four events stored, the resend dropped or counted as a duplicate -------------
        nats_run = run_example("publish_nats.py", "--nats", engine.nats)
        assert_clean(nats_run)
        published = re.findall(r"^published (\S+) \(([a-z_.]+)\): stream TOUCHPOINTS, seq (\d+)$",
                               nats_run.stdout, re.MULTILINE)
        assert [int(seq) for _, _, seq in published] == [1, 2, 3, 4], nats_run.stdout
        first = published[0][0]
        assert re.search(rf"^resent {re.escape(first)}: (JetStream dropped it as a duplicate|stored at seq \d+; "
                         r"the engine will count it as a duplicate)$", nats_run.stdout, re.MULTILINE), nats_run.stdout
        assert nats_run.stdout.rstrip().endswith("see GET /health (log head) and GET /rejects"), nats_run.stdout
        run = re.fullmatch(r"helpdesk:T-(\w+):opened", first)
        assert run is not None, first
        nats_sent = load_example("publish_nats.py").touchpoints(run.group(1), started)
        assert [(e["id"], e["type"]) for e in nats_sent] == [(i, t) for i, t, _ in published]
        engine.wait_for_head(4)

        # --- HTTP: four accepted and the typo rejected; the retry appends nothing ---------------
        http_run = run_example("post_http.py", "--http", engine.http)
        assert_clean(http_run)
        lines = http_run.stdout.splitlines()
        assert len(lines) == 4, http_run.stdout
        assert lines[0] == "POST /events (5 events): accepted 4, duplicates 0, rejected 1"
        typo = re.fullmatch(r"  #4 (shop:order-(\w+)-typo) \(purchase\.completed\): schema: data\.amount: "
                            r"unknown field", lines[1])
        assert typo is not None, lines[1]
        assert lines[2] == "the same again (a retry): accepted 0, duplicates 4, rejected 1"
        assert lines[3] == lines[1]
        http_sent = load_example("post_http.py").touchpoints(typo.group(2), started)
        assert http_sent[-1]["id"] == typo.group(1)
        http_good = http_sent[:-1]

        # --- the log holds exactly what was sent, once, in order --------------------------------
        health = engine.get("/health").json()
        assert health["log"]["head"] == 8, health
        records = exported(engine.data)
        assert [r["position"] for r in records] == list(range(1, 9))
        sent = nats_sent + http_good
        assert [r["event"]["id"] for r in records] == [e["id"] for e in sent]
        for event, record in zip(sent, records, strict=True):
            pair = as_logged(event, record)
            assert pair["got"] == pair["want"], event["id"]
            assert record["event"]["occurred_at"].endswith("Z")
        assert records[3]["event"]["identity"] == {"channel": "twitter", "handle": "adalovestea"}

        rejects = engine.get("/rejects").json()["items"]
        assert [(r["id"], r["reason"], r["detail"], r["via"]) for r in rejects] == [
            (typo.group(1), "schema", "data.amount: unknown field", "http")
        ] * 2
        verified = engage("verify", "--data", str(engine.data))
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        engine.kill()


def test_examples_say_clearly_when_the_engine_is_not_there(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path / "never-started")  # its ports are free: nothing listens
    nats_run = run_example("publish_nats.py", "--nats", engine.nats)
    assert nats_run.returncode == 1
    assert "Traceback" not in nats_run.stderr, nats_run.stderr
    assert f"cannot reach NATS at {engine.nats}" in nats_run.stderr


def test_guide_shows_the_examples_verbatim() -> None:
    guide = GUIDE.read_text(encoding="utf-8")
    for name in ("publish_nats.py", "post_http.py"):
        source = (EXAMPLES / name).read_text(encoding="utf-8")
        assert f"```python\n{source}```\n" in guide, f"docs/producers.md no longer shows docs/examples/{name} verbatim"
        assert f"(examples/{name})" in guide


def section(guide: str, title: str) -> str:
    start = guide.index(title)
    end = guide.find("\n## ", start + 1)
    return guide[start:] if end < 0 else guide[start:end]


def table_rows(text: str) -> list[list[str]]:
    """The cells of each Markdown table row in `text` (an escaped `\\|` stays inside its cell)."""
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
            for line in text.splitlines() if line.startswith("| ")]


def test_guide_catalogue_matches_the_code() -> None:
    rows = table_rows(section(GUIDE.read_text(encoding="utf-8"), "### Catalogue"))[1:]
    assert [name.strip("`") for name, _, _ in rows] == list(CATALOGUE)
    for name, data, personal in rows:
        fields = {f.name: f.required for f in msgspec.structs.fields(CATALOGUE[name.strip("`")].data)}
        said = dict(re.findall(r"`(\w+)(\??)`:", data))
        assert set(said) <= set(fields), name
        assert {field: mark != "?" for field, mark in said.items()} == {f: fields[f] for f in said}, name
        assert set(re.findall(r"`(\w+)`", personal)) == set(fields) & PERSONAL_FIELDS, name


def test_guide_outcomes_follow_the_order_of_checks() -> None:
    rows = re.findall(r"^\| (rejected `(\w+)`|duplicate|accepted) \|",
                      section(GUIDE.read_text(), "## 4. Outcomes"), re.MULTILINE)
    order = [reason or outcome for outcome, reason in rows]
    spec = [*REASONS[:5], "duplicate", *REASONS[5:], "accepted"]
    assert order == spec


def test_the_nats_example_waits_for_a_stream_that_is_not_there_yet(nats_server: NatsServer) -> None:
    """Its own comment: no stream yet (the engine creates it at start), try again. nats-py 2.x
    raises NoStreamResponseError for that, which it let through (found by a probe)."""
    example = subprocess.Popen([sys.executable, str(EXAMPLES / "publish_nats.py"), "--nats", nats_server.url],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        time.sleep(1.5)  # its first publish finds no stream
        assert example.poll() is None, example.communicate()

        async def create() -> None:
            nc = await jetstream.connect(nats_server.url, name="engage-test")
            try:
                await jetstream.ensure_stream(nc.jetstream())
            finally:
                await nc.close()

        asyncio.run(create())
        out, err = example.communicate(timeout=60)
    finally:
        if example.poll() is None:
            example.kill()
            example.wait()
    assert example.returncode == 0, (out, err)
    assert out.count("published ") == 4, out
