"""Settings, read once from flags and the environment (SPEC §9) and passed down, never re-read."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import msgspec

REPLAY_MARKER = "REPLAY"
# JetStream messages fetched and committed together: one fsync and one purge per batch. 1,024
# drained a backlog ~50 % faster than 256 in the ingest benchmark's in-process measurement.
DEFAULT_BATCH = 1024  # written by `engage replay` into the directory it builds
# How long POST /events waits for its commit (a batch commits in well under a second): a log that
# does not answer (a hung disk, a stopped writer) gets a clear 504, not a request open for ever.
COMMIT_TIMEOUT = 60.0


def causes(error: BaseException) -> Iterator[BaseException]:
    """The error, then what caused it, and so on down (each once): a library's wrapper of a
    sqlite3 or OS error still says what happened underneath."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        yield cause
        cause = cause.__cause__ or cause.__context__


class Damaged(Exception):
    """A file the command needs is damaged: one line and exit 1 (what is checked is not right), not
    a user's mistake and not a traceback."""


class UsageError(Exception):
    """A user mistake: the CLI prints the message as one line and exits 2."""


class Settings(msgspec.Struct, frozen=True):
    data: Path
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    nats_port: int = 4222
    nats_url: str | None = None  # an existing server; None: `up` starts its own
    ack_wait: float = 30.0  # seconds JetStream waits for an ack before redelivering
    commit_timeout: float = COMMIT_TIMEOUT  # seconds POST /events waits for its commit, then 504
    batch: int = DEFAULT_BATCH
    # Fault injection for crash tests only (env ENGAGE_FAULT): "kill-after-commit" SIGKILLs the
    # engine after a NATS batch is committed and before it is acknowledged.
    fault: str | None = None
    read_only: bool = False  # serve the read API only (a replay): no ingest, no NATS, no runner
    auth: Path | None = None  # `--auth FILE`: tokens and roles (engine/access.py); None: loopback only

    @property
    def log_path(self) -> Path:
        return self.data / "log.sqlite"

    @property
    def read_path(self) -> Path:
        return self.data / "read.sqlite"

    @property
    def nats_dir(self) -> Path:
        return self.data / "nats"


def parse_listen(value: str, flag: str = "--listen") -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise UsageError(f"{flag} {value!r}: expected HOST:PORT, for example 127.0.0.1:8080")
    return host.strip("[]"), parse_port(port, flag)


def parse_port(value: str, flag: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise UsageError(f"{flag} {value!r}: a port is a number from 0 to 65535 (0 picks a free one)") from None
    if not 0 <= port <= 65535:
        raise UsageError(f"{flag} {port}: a port is a number from 0 to 65535 (0 picks a free one)")
    return port


NATS_SCHEMES = ("nats", "tls", "ws", "wss")


def parse_nats_url(value: str, flag: str = "--nats") -> str:
    """A NATS server URL (or several, comma-separated), checked before anything tries it."""
    for one in nats_servers(value):
        try:
            parts = urlsplit(one)
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in NATS_SCHEMES or not parts.hostname:
            raise UsageError(f"{flag} {without_credentials(value)!r}: give a NATS server URL, "
                             "for example nats://127.0.0.1:4222")
    return value


def nats_servers(url: str) -> list[str]:
    """The servers a `--nats` value lists (comma-separated), as nats-py takes them."""
    return [one.strip() for one in url.split(",")]


def without_credentials(url: str) -> str:
    """A URL as it may be printed or logged: a token or password in it is a secret
    (nats://shop:TOKEN@host -> nats://shop:***@host); `url` may list several, comma-separated."""
    if "," in url:
        return ",".join(without_credentials(one) for one in nats_servers(url))
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}" if colon else f"***@{host}"))
