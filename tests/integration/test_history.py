"""`engage history KEY` (SPEC §8): a profile's full history, personal fields readable unless erased;
JSON Lines in a pipe, a table on a terminal; a linked identity names its customer."""
from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import termios
from pathlib import Path
from typing import Any

from engine.log import Log
from engine.received import Received
from projections.projector import Projector
from tests.integration.engine_process import ENGAGE, engage
from tests.integration.test_projections import NOW, at, story
from tests.samples import ev


def project(data: Path, raws: list[bytes]) -> None:
    """Commit to the log of `data` and bring its read models up to the head."""
    log = Log(data / "log.sqlite")
    log.commit([Received(raw, "test", NOW) for raw in raws])
    projector = Projector(data / "read.sqlite")
    projector.apply(log.records(projector.position, 10_000))
    projector.close()
    log.close()


def history(data: Path, key: str, *flags: str) -> tuple[list[dict[str, Any]], str]:
    r = engage("history", key, "--data", str(data), *flags)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "enc1:" not in r.stdout  # ciphertext never shows: readable, or null
    return [json.loads(line) for line in r.stdout.splitlines()], r.stderr


def one_line_error(r: subprocess.CompletedProcess[str], *words: str) -> None:
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and all(word in lines[0] for word in words), r.stderr
    assert r.stdout == ""


def test_a_customer_history_reads_its_personal_fields_and_gathers_its_linked_identity(tmp_path: Path) -> None:
    project(tmp_path, story())
    events, stderr = history(tmp_path, "c-1")
    assert stderr == ""
    assert [e["id"] for e in events] == [f"e-{i}" for i in range(1, 12)]  # oldest first
    assert events[0]["data"] == {"name": "Ada", "email": "ada@example.org"}
    assert events[0]["position"] == 1 and events[0]["customer"] == "c-1" and events[0]["recorded_at"]
    carried = events[6]  # sent by @Alice on Twitter before the link: c-1's now (SPEC §3)
    assert carried["identity"] == {"channel": "twitter", "handle": "alice"} and "customer" not in carried
    assert carried["data"] == {"thread": "t", "text": "hi"}
    assert history(tmp_path, "c-1", "--json")[0] == events


def test_an_erased_customer_history_has_no_personal_data(tmp_path: Path) -> None:
    before, after = story()[:15], story()[15:]
    project(tmp_path, before)
    events, stderr = history(tmp_path, "c-gone")
    assert [e["id"] for e in events] == ["e-13", "e-14", "e-15"] and stderr == ""
    assert events[1]["data"]["text"] == "x"  # readable until the erasure
    project(tmp_path, after)
    events, stderr = history(tmp_path, "c-gone")
    assert [e["id"] for e in events] == ["e-13", "e-14", "e-15", "e-16"]
    assert events[1]["data"] == {"thread": "t", "text": None}
    assert events[-1]["type"] == "customer.erased"
    assert "c-gone was erased at position 16" in stderr
    # the identity it had starts afresh: its new profile holds only what came after, readable
    fresh, _ = history(tmp_path, "~forum:g")
    assert [(e["id"], e["data"]["text"]) for e in fresh] == [("e-17", "new")]


def test_a_linked_identity_names_its_customer(tmp_path: Path) -> None:
    project(tmp_path, story())
    one_line_error(engage("history", "~Twitter:@Alice", "--data", str(tmp_path)), "~twitter:alice", "c-1",
                   "engage history c-1")


def test_an_unknown_profile_is_one_line(tmp_path: Path) -> None:
    project(tmp_path, story())
    one_line_error(engage("history", "nobody", "--data", str(tmp_path)), "no profile 'nobody'")
    one_line_error(engage("history", "c-1", "--data", str(tmp_path / "nowhere")), "no log")
    (tmp_path / "read.sqlite").unlink()
    one_line_error(engage("history", "c-1", "--data", str(tmp_path)), "no read models", "engage rebuild")


def test_read_models_behind_the_log_are_said(tmp_path: Path) -> None:
    project(tmp_path, story())
    log = Log(tmp_path / "log.sqlite")
    log.commit([Received(ev(99, "idea.voted", {"idea": "i"}, at=at(20)), "test", NOW)])
    log.close()
    events, stderr = history(tmp_path, "c-1")
    assert len(events) == 11 and "position 18 of 19" in stderr


def on_a_terminal(data: Path, key: str) -> str:
    """What `engage history KEY` writes to a terminal of 200 columns."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))  # 200 columns
    try:
        proc = subprocess.Popen([*ENGAGE, "history", key, "--data", str(data)], stdout=child,
                                stderr=subprocess.PIPE, env={**os.environ, "TERM": "xterm"})
        os.close(child)
        output = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the terminal closes when the process exits
                break
            if not chunk:
                break
            output += chunk
        assert proc.wait(30) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        os.close(main)
    return output.decode()


def test_on_a_terminal_history_is_a_table(tmp_path: Path) -> None:
    project(tmp_path, story())
    text = on_a_terminal(tmp_path, "c-1")
    assert "c-1: 11 events" in text
    assert "customer.registered" in text and "name=Ada" in text and "~twitter:alice" in text
    assert not text.lstrip().startswith("{")


def test_a_replay_keeps_the_history_but_no_personal_data(tmp_path: Path) -> None:
    project(tmp_path / "data", story())
    r = engage("replay", "--data", str(tmp_path / "data"), "--to-position", "8", "--into", str(tmp_path / "then"))
    assert r.returncode == 0, r.stderr
    events, stderr = history(tmp_path / "then", "~twitter:alice")  # not linked yet at position 8
    assert [(e["id"], e["data"]["text"]) for e in events] == [("e-7", None), ("e-8", None)]
    assert "is a replay" in stderr
    # export --decrypt says so too (found by a probe: it was silent)
    exported = engage("export", "--data", str(tmp_path / "then"), "--decrypt")
    assert exported.returncode == 0, exported.stderr
    assert all(all(v is None for v in json.loads(line).get("personal", {}).values())
               for line in exported.stdout.splitlines())
    assert "is a replay, which keeps no keys" in exported.stderr, exported.stderr
    assert "is a replay" not in engage("export", "--data", str(tmp_path / "then")).stderr


def test_on_a_terminal_customer_data_is_neither_markup_nor_control_sequences(tmp_path: Path) -> None:
    """Keys and fields are what customers and producers wrote: rich's markup (a crash on `[/]`, a
    live link) and escape sequences (clear the screen, set the window title) stay text."""
    key = "[/]rich[bold red]x"
    project(tmp_path, [ev(1, "customer.registered", {"name": "\u001b[2Jcleared\u001b]0;pwned\u0007",
                                                     "email": "[link=http://evil.example]click[/link]"},
                          customer=key)])
    text = on_a_terminal(tmp_path, key)
    assert key in text and "[link=http://evil.example]click[/link]" in text
    assert "\x1b[2J" not in text and "\x1b]0;" not in text and "\x07" not in text
    assert "\\x1b[2Jcleared" in text  # written out


def test_a_key_with_control_characters_is_written_out_in_an_error(tmp_path: Path) -> None:
    """A producer chooses customer keys: one that sets the window title and clears the screen
    reached the terminal through 'is linked to customer …'."""
    hostile = "c-\x1b]0;PWNED\x07\x1b[2J"
    project(tmp_path, [ev("h1", "idea.voted", {"idea": "i"}, identity={"channel": "twitter", "handle": "evil"}),
                       ev("h2", "identity.linked", {"channel": "twitter", "handle": "evil"}, customer=hostile)])
    r = engage("history", "~twitter:evil", "--data", str(tmp_path))
    one_line_error(r, "is linked to customer", "\\x1b]0;PWNED\\x07")
    assert "\x1b" not in r.stderr and "\x07" not in r.stderr


def test_a_key_is_taken_as_given_before_it_is_normalised(tmp_path: Path) -> None:
    """The handle `@@double` is `@double` once one @ is stripped: GET /customers lists
    `~tw:@double`, and that key (found by a probe: it was normalised again, to `~tw:double`) and
    the handle as sent both name it."""
    project(tmp_path, [ev("d-1", "comment.posted", {"thread": "t", "text": "two ats"},
                          identity={"channel": "Tw", "handle": "@@double"})])
    for key in ("~tw:@double", "~Tw:@@double"):
        events, _ = history(tmp_path, key)
        assert [(e["id"], e["identity"]) for e in events] == [("e-d-1", {"channel": "tw", "handle": "@double"})], key
    one_line_error(engage("history", "~tw:double", "--data", str(tmp_path)), "no profile '~tw:double'")
