"""Logging for every subcommand: readable lines on a terminal, one JSON object per line otherwise
(a log shipper reads fields, not prose). The standard library is enough for this."""
from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import TextIO

# The attributes every LogRecord has; anything else was passed with `extra=` and is a field.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """{"time", "level", "logger", "message", "exception"?, **extra} on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in entry:
                entry[name] = value if isinstance(value, str | int | float | bool | None) else repr(value)
        return json.dumps(entry, ensure_ascii=False)


def configure(stream: TextIO | None = None, *, level: int = logging.INFO) -> None:
    """Human lines when `stream` (stderr) is a terminal, JSON Lines otherwise."""
    out = stream or sys.stderr
    handler = logging.StreamHandler(out)
    if out.isatty():
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise for `emit`
    # asyncio logs a failed accept (no file descriptor left: a flood of half-open connections) with a
    # traceback on every turn of the loop: 110 MB in 30 s, a full disk next. Once per message a while.
    asyncio_log = logging.getLogger("asyncio")
    asyncio_log.filters[:] = [Repeats()]
    # What nobody caught ends a process (or a thread) as one entry too, not as a bare traceback.
    sys.excepthook = _log_uncaught
    sys.unraisablehook = lambda hook: logging.getLogger("engage").error(
        "%s: %s", hook.err_msg or "exception ignored", hook.object, exc_info=(
            hook.exc_type, hook.exc_value or hook.exc_type(), hook.exc_traceback))
    threading.excepthook = lambda hook: _log_uncaught(hook.exc_type, hook.exc_value or hook.exc_type(),
                                                     hook.exc_traceback)


def _log_uncaught(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, trace)
        return
    logging.getLogger("engage").critical("uncaught: %s", error, exc_info=(kind, error, trace))


class Repeats(logging.Filter):
    """Lets a message through once per `every` seconds; says how many were held back meanwhile."""

    def __init__(self, every: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every, self.clock = every, clock
        self._last: dict[str, tuple[float, int]] = {}  # message -> (when it went through, held back since)

    def filter(self, record: logging.LogRecord) -> bool:
        key, now = str(record.msg), self.clock()
        last, held = self._last.get(key, (None, 0))
        if last is not None and now - last < self.every:
            self._last[key] = (last, held + 1)
            return False
        if len(self._last) > 1000:  # bounded: messages are templates, but do not trust that
            self._last.clear()
        self._last[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like it held back)"
        return True
