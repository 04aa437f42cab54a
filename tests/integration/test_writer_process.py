"""The log's writer process: the same outcomes as a Log on a thread, and a writer that dies is
started again without losing or doubling anything."""
from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from commands.outcomes import Accepted, Duplicate, Redelivered, Rejected
from engine.chain import verify
from engine.datalock import DataBusy, DataLock
from engine.log import Log, LogError
from engine.received import Received
from engine.writer import FAULT_ENV, FollowingLog, WriterGone, WriterProcess, pack, unpack
from tests.samples import ev, outcome_cases

NOW = datetime(2026, 10, 2, tzinfo=UTC)


def _inputs() -> list[Received]:
    return [Received(raw, "test", NOW) for raw, _ in outcome_cases()]


def _delivered(prefix: str, seqs: range) -> list[Received]:
    """Votes as JetStream delivers them: stream "S", these sequences, event ids `{prefix}{seq - 1}`."""
    return [Received(ev(f"{prefix}{seq - 1}", "idea.voted", {"idea": "i"}), "nats:touchpoints.x", NOW,
                     stream="S", seq=seq) for seq in seqs]


@pytest.mark.parametrize("outcome", [Accepted(7), Duplicate(3), Redelivered(42), Rejected("schema", "data.rating")])
def test_outcomes_cross_the_pipe_unchanged(outcome: object) -> None:
    assert unpack(pack(outcome)) == outcome  # type: ignore[arg-type]


def test_the_writer_process_decides_exactly_as_a_log_on_a_thread(tmp_path: Path) -> None:
    direct = Log(tmp_path / "direct.sqlite", clock=lambda: NOW)
    expected = direct.commit(_inputs())
    direct.close()
    writer = WriterProcess(tmp_path / "child.sqlite")
    writer.start()
    try:
        got = writer.commit(_inputs())
        assert [type(o) for o in got] == [type(o) for o in expected]
        assert [o for o in got if isinstance(o, Rejected)] == [o for o in expected if isinstance(o, Rejected)]
        assert writer.head.position == sum(isinstance(o, Accepted) for o in expected)
        reader = FollowingLog(tmp_path / "child.sqlite", writer)
        try:
            assert reader.head == writer.head
            assert verify(reader.iter_records()) == (writer.head.position, None)
        finally:
            reader.close()
    finally:
        writer.close()
    assert writer.pid is None


def test_a_killed_writer_is_started_again_and_redelivery_appends_nothing(tmp_path: Path) -> None:
    writer = WriterProcess(tmp_path / "log.sqlite")
    writer.start()
    try:
        first = _delivered("a", range(1, 51))
        assert all(isinstance(o, Accepted) for o in writer.commit(first))
        pid = writer.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        dead = writer._proc
        assert dead is not None and dead.stdin is not None and dead.stdout is not None
        dead.wait()
        # The next commit notices the dead writer, starts a new one, which reads the head afresh.
        again = writer.commit(first[40:])
        assert again == [Redelivered(k + 41) for k in range(10)]
        assert dead.stdin.closed and dead.stdout.closed  # the dead one's pipes are not left open
        more = [Received(ev(f"b{k}", "idea.voted", {"idea": "i"}), "http", NOW) for k in range(5)]
        assert writer.commit(more) == [Accepted(51 + k) for k in range(5)]
        assert writer.restarts == 1
    finally:
        writer.close()
    log = Log(tmp_path / "log.sqlite", create=False)
    try:
        assert verify(log.iter_records()) == (55, None)
    finally:
        log.close()


def test_a_writer_killed_mid_batch_raises_and_the_retry_is_idempotent(tmp_path: Path) -> None:
    writer = WriterProcess(tmp_path / "log.sqlite")
    writer.start()
    try:
        pid = writer.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert writer._proc is not None
        writer._proc.wait()
        batch = [Received(ev(f"c{k}", "idea.voted", {"idea": "i"}), "http", NOW) for k in range(3)]
        # The writer is found dead before the batch is sent: it is started again first.
        assert writer.commit(batch) == [Accepted(1), Accepted(2), Accepted(3)]
        assert writer.commit(batch) == [Duplicate(1), Duplicate(2), Duplicate(3)]
    finally:
        writer.close()


@pytest.fixture
def dying_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WriterProcess]:
    """A writer that exits right after its first commit, before answering: a crash at the worst
    moment. Writers started after `monkeypatch.delenv(FAULT_ENV)` behave."""
    monkeypatch.setenv(FAULT_ENV, "exit-after-commit")
    writer = WriterProcess(tmp_path / "log.sqlite")
    writer.start()
    try:
        yield writer
    finally:
        writer.close()


def test_a_writer_dying_between_commit_and_answer_raises_and_the_retry_appends_nothing(
        dying_writer: WriterProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = dying_writer
    batch = _delivered("d", range(1, 4))
    with pytest.raises(WriterGone):
        writer.commit(batch)  # committed, but nobody was told: the caller must not acknowledge
    monkeypatch.delenv(FAULT_ENV)
    assert writer.commit(batch) == [Redelivered(1), Redelivered(2), Redelivered(3)]  # a new writer
    assert writer.commit([Received(ev("d0", "idea.voted", {"idea": "i"}), "http", NOW)]) == [Duplicate(1)]
    assert writer.head.position == 3


def test_batches_sent_ahead_are_decided_in_sending_order(tmp_path: Path) -> None:
    writer = WriterProcess(tmp_path / "log.sqlite")
    writer.start()
    try:
        first = [Received(ev(f"f{k}", "idea.voted", {"idea": "i"}), "http", NOW) for k in range(3)]
        second = [Received(ev(f"f{k}", "idea.voted", {"idea": "i"}), "http", NOW) for k in range(2, 5)]
        one, two = writer.send(first), writer.send(second)  # both in the pipe before any answer
        assert writer.receive(one) == [Accepted(1), Accepted(2), Accepted(3)]
        assert writer.receive(two) == [Duplicate(3), Accepted(4), Accepted(5)]
        assert writer.head.position == 5
    finally:
        writer.close()


def test_a_batch_sent_behind_one_the_writer_never_answered_fails_too(
        dying_writer: WriterProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = dying_writer
    first, second = _delivered("g", range(1, 4)), _delivered("g", range(4, 7))
    one = writer.send(first)
    try:
        two = writer.send(second)
    except WriterGone:
        two = None  # the writer was already gone: the second batch could not even be sent
    with pytest.raises(WriterGone):
        writer.receive(one)  # committed, never answered
    if two is not None:
        with pytest.raises(WriterGone):
            writer.receive(two)  # never read by the writer that exited
    monkeypatch.delenv(FAULT_ENV)
    # Redelivered in order to a new writer: the first batch is known, the second is decided now.
    assert writer.commit(first + second) == [Redelivered(1), Redelivered(2), Redelivered(3),
                                             Accepted(4), Accepted(5), Accepted(6)]


def test_a_log_the_writer_cannot_open_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "not-a-db").write_bytes(b"this is not an SQLite file" * 100)
    with pytest.raises(LogError, match=r"is damaged \(file is not a database\)"):
        WriterProcess(tmp_path / "not-a-db").start()


def test_the_writer_holds_the_data_lock_it_inherits(tmp_path: Path) -> None:
    lock = DataLock(tmp_path)
    lock.acquire()
    writer = WriterProcess(tmp_path / "log.sqlite", keep_fds=[lock.fd])
    writer.start()
    try:
        lock.release()  # the engine is gone, its writer is not
        with pytest.raises(DataBusy):
            DataLock(tmp_path).acquire()
    finally:
        writer.close()
    after = DataLock(tmp_path)
    after.acquire()  # the writer exited: the directory is free
    after.release()
