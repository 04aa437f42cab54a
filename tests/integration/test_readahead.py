"""The log read ahead by a child process (engine/readahead.py): the same records in the same pages
as reading in-process, errors said as LogError, and no reader left behind."""
from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine import readahead
from engine.children import children_of
from engine.log import Log, LogError
from engine.received import Received
from ops.bench.events import generate

NOW = datetime(2026, 10, 1, tzinfo=UTC)


@pytest.fixture
def log(tmp_path: Path) -> Log:
    log = Log(tmp_path / "log.sqlite")
    log.commit([Received(raw, "test", NOW) for raw in generate(1200, customers=80, anchor=NOW).lines])
    return log


def readers() -> list[int]:
    """Our children that are readers of the log."""
    return children_of(os.getpid(), b"engine.readahead")


def test_the_pages_are_the_logs_own(log: Log) -> None:
    head = log.head.position
    assert list(readahead.pages(log.path, 0, head, 500)) == list(log.pages(0, head, 500))
    assert list(readahead.pages(log.path, 700, head - 3, 100)) == list(log.pages(700, head - 3, 100))
    assert list(readahead.pages(log.path, head, head, 100)) == []
    assert readers() == []


def test_stopping_early_stops_the_reader(log: Log) -> None:
    pages = readahead.pages(log.path, 0, log.head.position, 10)
    assert len(next(pages)) == 10
    assert readers() != []
    pages.close()
    assert readers() == []


def test_a_log_that_cannot_be_read_is_a_log_error(tmp_path: Path) -> None:
    with pytest.raises(LogError, match="nowhere"):
        list(readahead.pages(tmp_path / "nowhere" / "log.sqlite", 0, 10, 5))
    assert readers() == []
