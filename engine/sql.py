"""What the log and its key ring share of SQL: a cursor's face, and reads of many keys at once."""
from __future__ import annotations

from typing import Any, Protocol

IN_CHUNK = 500  # values bound in one IN (...): well under SQLite's limit on bound parameters


class Cursor(Protocol):
    def execute(self, *args: Any) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> Any: ...


def select_in(c: Cursor, select: str, column: str, values: list[str]) -> list[Any]:
    """The rows of `select` whose `column` is one of `values`, a few statements for any number."""
    rows: list[Any] = []
    for start in range(0, len(values), IN_CHUNK):
        chunk = values[start:start + IN_CHUNK]
        c.execute(f"{select} WHERE {column} IN ({','.join('?' * len(chunk))})", chunk)
        rows += c.fetchall()
    return rows
