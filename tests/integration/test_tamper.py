"""Tampering: change one stored event or one export line, and `verify` names that position. A verifier
written here from SPEC §8 alone (no engine import) agrees with the export."""
from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.log import Log
from engine.received import Received
from tests.integration.engine_process import engage
from tests.samples import ev

N = 60


def spec_verify(lines: list[str]) -> int | None:
    """SPEC §8 read literally: the first bad position, or None. JCS here is sorted keys, no
    white space, UTF-8 unescaped: RFC 8785 for strings, integers, booleans and null."""
    prev = "0" * 64
    for i, line in enumerate(lines, start=1):
        record = json.loads(line)
        body = {k: v for k, v in record.items() if k not in ("hash", "personal")}
        jcs = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        if record["position"] != i or record["prev_hash"] != prev or hashlib.sha256(jcs).hexdigest() != record["hash"]:
            return i
        prev = record["hash"]
    return None


@pytest.fixture
def data(tmp_path: Path) -> Path:
    log = Log(tmp_path / "data" / "log.sqlite")
    now = datetime.now(UTC)
    raws = [ev(k, "comment.posted", {"thread": "t", "text": f"n° {k} ✓ \"quoted\"\n\ttabbed"}, customer=f"c-{k % 7}")
            for k in range(N // 2)]
    raws += [ev(f"i{k}", "idea.voted", {"idea": f"idée-{k}"}, identity={"channel": "Forum", "handle": f"@Ünï{k}"})
             for k in range(N // 2)]
    for start in range(0, N, 16):
        log.commit([Received(raw, "test", now) for raw in raws[start:start + 16]])
    log.close()
    return tmp_path / "data"


def export(data: Path, target: Path) -> list[str]:
    r = engage("export", "--data", str(data), "-o", str(target))
    assert r.returncode == 0, r.stderr
    return target.read_text(encoding="utf-8").splitlines()


def test_an_intact_export_verifies_with_engage_and_with_spec_alone(data: Path, tmp_path: Path) -> None:
    lines = export(data, tmp_path / "log.jsonl")
    assert len(lines) == N
    assert spec_verify(lines) is None
    r = engage("verify", str(tmp_path / "log.jsonl"))
    assert r.returncode == 0 and f"{N} records" in r.stdout
    r = engage("verify", "--data", str(data))
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("field", ["source", "occurred_at", "recorded_at", "position"])
def test_a_changed_export_line_fails_at_its_position(data: Path, tmp_path: Path, field: str) -> None:
    lines = export(data, tmp_path / "log.jsonl")
    record = json.loads(lines[36])
    if field in record["event"]:
        record["event"][field] = "tampered" if field == "source" else "2026-01-01T00:00:00Z"
    else:
        record[field] = 99 if field == "position" else "2026-01-01T00:00:00Z"
    lines[36] = json.dumps(record, ensure_ascii=False)
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert spec_verify(lines) == 37
    r = engage("verify", str(tampered))
    assert r.returncode == 1
    assert "position 37" in r.stdout


def test_a_changed_stored_event_fails_verify_on_the_data_directory(data: Path) -> None:
    con = sqlite3.connect(data / "log.sqlite")
    (state,) = con.execute("SELECT state FROM stored_events WHERE originator_version=37").fetchone()
    con.execute("UPDATE stored_events SET state=? WHERE originator_version=37",
                (state.replace(b'"source":"test"', b'"source":"evil"'),))
    con.commit()
    con.close()
    r = engage("verify", "--data", str(data))
    assert r.returncode == 1
    assert "position 37" in r.stdout


def test_a_removed_stored_event_is_a_gap(data: Path) -> None:
    con = sqlite3.connect(data / "log.sqlite")
    con.execute("DELETE FROM stored_events WHERE originator_version=20")
    con.commit()
    con.close()
    r = engage("verify", "--data", str(data))
    assert r.returncode == 1
    assert "position 20" in r.stdout


def test_a_name_given_twice_in_a_record_fails_at_its_position(data: Path, tmp_path: Path) -> None:
    """`"source":"EVIL","source":"test"`: a decoder that keeps the last value computes the right
    hash, one that keeps the first shows EVIL. RFC 8785 takes no such input: it is a break."""
    lines = export(data, tmp_path / "log.jsonl")
    assert '"source":"test"' in lines[36]
    lines[36] = lines[36].replace('"source":"test"', '"source":"EVIL","source":"test"', 1)
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert spec_verify(lines) is None  # json.loads keeps the last value: the hash matches
    r = engage("verify", str(tampered))
    assert (r.returncode, r.stdout.strip()) == (
        1, "broken at position 37: the name 'source' is given twice in one object"), r.stdout + r.stderr


def test_a_blank_line_between_records_is_a_break_and_blank_lines_at_the_end_are_not(
        data: Path, tmp_path: Path) -> None:
    lines = export(data, tmp_path / "log.jsonl")
    ended = tmp_path / "ended.jsonl"
    ended.write_text("\n".join(lines) + "\n\n \r\n", encoding="utf-8")
    r = engage("verify", str(ended))
    assert r.returncode == 0 and f"{N} records" in r.stdout, r.stdout + r.stderr
    gap = tmp_path / "gap.jsonl"
    gap.write_text("\n".join([*lines[:36], "", *lines[36:]]) + "\n", encoding="utf-8")
    r = engage("verify", str(gap))
    assert r.returncode == 1 and r.stdout.startswith("broken at position 37: an empty line"), r.stdout + r.stderr


def test_verify_reads_an_export_from_standard_input(data: Path, tmp_path: Path) -> None:
    lines = export(data, tmp_path / "log.jsonl")
    r = engage("verify", "-", stdin=("\n".join(lines) + "\n").encode())
    assert r.returncode == 0 and r.stdout.startswith(f"ok: {N} records"), r.stdout + r.stderr
    r = engage("verify", "-", stdin=("\n".join([*lines[:3], lines[4]]) + "\n").encode())
    assert r.returncode == 1 and r.stdout.startswith("broken at position 4:"), r.stdout + r.stderr
