"""`engage emit`: publish a file of events (NDJSON) over HTTP or NATS, as a producer would."""
from __future__ import annotations

import asyncio
import base64
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import msgspec

from engine.settings import UsageError, nats_servers, without_credentials
from ops.answers import MAX_BODY, MAX_EVENTS, IngestAnswer

HTTP_BATCH = MAX_EVENTS  # lines a request carries at most (fewer when they would make the body too big)
HTTP_TIMEOUT = 120.0  # seconds: beyond the engine's commit timeout (60 s), after which it answers 504
NATS_WINDOW = 256
SUBJECT = "touchpoints.emit"
# The start of the count of lines emit could not send (a NATS server refuses them whole).
NOT_SENT = "not sent"
# The bytes nats-py writes around a message's headers: "NATS/1.0\r\n", then "\r\n" after the last.
HEADER_FRAME = len(b"NATS/1.0\r\n\r\n")


def engine_url(value: str) -> str:
    """The engine's base URL from --http. Producers POST to /events, so a URL ending in /events (as
    copied from the docs) is taken as that endpoint's: emit adds /events itself."""
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise UsageError(f"--http {without_credentials(value)!r}: give the engine's HTTP address, for example "
                         "http://127.0.0.1:8080 (as `engage up` prints it)")
    return urlunsplit(parts._replace(path=parts.path.rstrip("/").removesuffix("/events")))


def literal_subject(subject: str) -> str:
    """--subject as a publisher needs it: literal (a wildcard names many subjects, a message goes to
    one) and under touchpoints., the stream the engine reads."""
    tokens = subject.split(".")
    if tokens[0] != "touchpoints" or len(tokens) < 2:
        problem = "the engine reads touchpoints.>: give a subject under it, for example touchpoints.backfill"
    elif any(c.isspace() or not c.isprintable() for c in subject):
        problem = "a subject has no spaces or control characters"
    elif "" in tokens:
        problem = "a subject's parts between dots cannot be empty"
    elif "*" in subject or ">" in subject:
        problem = "a publisher needs a literal subject: no * or > wildcards, for example touchpoints.backfill"
    else:
        return subject
    raise UsageError(f"--subject {subject!r}: {problem}")


def authorization(token: str) -> str:
    """The Authorization header that carries a producer's token exactly: Bearer, as the docs show
    it, when the token is printable ASCII without spaces at its ends (the engine trims a Bearer
    token, and httpx refuses other bytes in a header); else Basic, with the token as the password
    in UTF-8 (bytes that were not UTF-8 on the command line stay as they were)."""
    if token.isascii() and token.isprintable() and token == token.strip():
        return f"Bearer {token}"
    return "Basic " + base64.b64encode(b"emit:" + token.encode("utf-8", "surrogateescape")).decode("ascii")


def size_text(size: int) -> str:
    """A byte count as a person reads a limit: 1 MiB, 64 KiB, else in bytes."""
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size:,} bytes"


def wire_size(line: bytes, headers: dict[str, str] | None) -> int:
    """What a NATS server weighs against its max_payload: the payload and its headers together, as
    nats-py writes them (values trimmed). One byte over and the server drops the connection."""
    if headers is None:
        return len(line)
    fields = sum(len(f"{key}: {value.strip()}\r\n".encode()) for key, value in headers.items())
    return len(line) + HEADER_FRAME + fields


def batches(lines: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    """The lines, stripped and without blank ones, `size` at a time, whatever their bytes (what
    emit --nats publishes together; the server's max_payload is checked line by line)."""
    for batch, _ in http_bodies(lines, count=size, limit=sys.maxsize):
        yield batch


def http_bodies(lines: Iterable[bytes], *, count: int = HTTP_BATCH,
                limit: int = MAX_BODY) -> Iterator[tuple[list[bytes], int]]:
    """The NDJSON requests of `lines`: (a batch, how many lines that cannot be sent were met while
    it was gathered). A batch holds at most `count` lines and its body (each line and its line
    break) at most `limit` bytes, the engine's body limit: 1,000 lines over 64 KiB would make it
    answer 413 for all of them, where each is a `too_large` reject kept with its bytes. A line that
    alone is over the limit cannot be sent over HTTP at all: it is counted, and the lines after it
    are sent."""
    batch: list[bytes] = []
    size = skipped = 0
    for line in lines:
        line = line.strip()
        if not line:
            continue
        if len(line) + 1 > limit:
            skipped += 1
            continue
        if batch and (len(batch) >= count or size + len(line) + 1 > limit):
            yield batch, skipped
            batch, size, skipped = [], 0, 0
        batch.append(line)
        size += len(line) + 1
    if batch or skipped:
        yield batch, skipped


async def emit_http(url: str, lines: Iterable[bytes], progress: Callable[[int], None], *,
                    token: str | None = None, counts: Counter[str] | None = None) -> Counter[str]:
    """POST NDJSON batches of up to 1,000 (http_bodies); counts every outcome the engine answered
    (into `counts`, which holds what was answered so far when this stops on an error) and the lines
    no request could carry. `token`: a producer's, for an engine run with --auth."""
    counts = Counter() if counts is None else counts
    sent = 0
    shown = without_credentials(url)
    headers = {} if token is None else {"authorization": authorization(token)}
    too_large = f"{NOT_SENT}: over the engine's request body limit of {MAX_BODY:,} bytes"
    async with httpx.AsyncClient(base_url=url, timeout=HTTP_TIMEOUT, headers=headers) as client:
        for batch, skipped in http_bodies(lines):
            if skipped:
                counts[too_large] += skipped
                sent += skipped
                progress(sent)
            if not batch:
                continue
            try:
                r = await client.post("/events", content=b"\n".join(batch) + b"\n",
                                      headers={"content-type": "application/x-ndjson"})
            except httpx.HTTPError as e:
                raise UsageError(unanswered(shown, e)) from e
            if r.status_code in (401, 403):
                raise UsageError(f"{shown}/events refused the token ({r.status_code}): give a producer's with --token")
            if r.status_code == 404:
                raise UsageError(f"{shown}/events answered 404: give the engine's HTTP address as `engage up` "
                                 "prints it, for example http://127.0.0.1:8080")
            if r.status_code != 200:
                raise UsageError(f"{shown}/events answered {r.status_code}: {r.text[:200]}")
            answer = _answer(shown, r.content)
            counts["accepted"] += answer.accepted
            counts["duplicate"] += answer.duplicates
            for item in answer.rejected:
                counts[item.reason] += 1
            sent += len(batch)
            progress(sent)
    return counts


def unanswered(shown: str, error: httpx.HTTPError) -> str:
    """Why a request got no answer, never empty: some httpx errors carry no message (a ReadError
    from a server that closed the connection on an HTTP request)."""
    reason = str(error).strip() or type(error).__name__
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
        return f"cannot reach {shown}: {reason}; is `engage up` running there?"
    if isinstance(error, httpx.TimeoutException):
        return (f"{shown} did not answer within {HTTP_TIMEOUT:g} s ({reason}): see the engine's log; sending the "
                "same input again is safe")
    return (f"{shown} did not answer HTTP ({reason}): is it the engine's HTTP address, as `engage up` prints it, "
            "and not its NATS port?")


def _answer(shown: str, body: bytes) -> IngestAnswer:
    try:
        return msgspec.json.decode(body, type=IngestAnswer)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise UsageError(f"{shown}/events answered 200, but not the engine's answer: is it the engine's HTTP "
                         "address, as `engage up` prints it?") from None


_ids = msgspec.json.Decoder(dict[str, Any])


def event_id(line: bytes) -> str | None:
    try:
        value = _ids.decode(line).get("id")
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None
    return value if isinstance(value, str) else None


async def emit_nats(url: str, lines: Iterable[bytes], progress: Callable[[int], None],
                    subject: str = SUBJECT, counts: Counter[str] | None = None,
                    login: tuple[str, str] | None = None) -> Counter[str]:
    """Publish each event with its id as `Nats-Msg-Id`; counts what JetStream acknowledged (into
    `counts`, as emit_http), and under NOT_SENT the lines over the server's max_payload, which no
    publish can carry: the rest are sent. The engine decides outcomes asynchronously: they show in
    /stats and /rejects. `login`: (user, password), when they are not in the URL."""
    import nats
    from nats.errors import NoServersError
    from nats.js.errors import APIError, NoStreamResponseError

    errors: list[Exception] = []

    async def quiet(e: Exception) -> None:
        errors.append(e)  # the one line below says it; nats-py would log a traceback per attempt

    shown = without_credentials(url)
    try:
        user, password = login or (None, None)
        nc = await nats.connect(nats_servers(url), connect_timeout=5, max_reconnect_attempts=1, error_cb=quiet,
                                user=user, password=password)
    except (NoServersError, OSError) as e:
        if any("authorization" in str(error).lower() for error in errors):
            as_whom = f" of {login[0]}" if login else ""
            raise UsageError(f"NATS at {shown} refused the credentials{as_whom}: give a producer's token and its "
                             "name (--token and --token-name, or nats://NAME:TOKEN@host:port)") from None
        raise UsageError(f"cannot reach NATS at {shown}: {e}; is `engage up` running there?") from None
    js = nc.jetstream()
    counts = Counter() if counts is None else counts
    sent = 0
    # The server's limit, as it said when we connected: nats-py refuses a larger payload itself,
    # and the server drops the connection when the headers take it over.
    limit = nc.max_payload
    too_large = f"{NOT_SENT}: over the NATS max_payload of {size_text(limit)}"
    try:
        for window in batches(lines, NATS_WINDOW):
            messages = [(line, _headers(line)) for line in window]
            fitting = [(line, headers) for line, headers in messages if wire_size(line, headers) <= limit]
            acks = await asyncio.gather(*(js.publish(subject, line, headers=headers) for line, headers in fitting))
            for ack in acks:
                counts["deduplicated by JetStream" if ack.duplicate else "published"] += 1
            if len(fitting) < len(window):
                counts[too_large] += len(window) - len(fitting)
            sent += len(window)
            progress(sent)
    except NoStreamResponseError:
        raise UsageError(f"no JetStream stream at {shown} takes {subject}: is it the NATS server of `engage up` "
                         "(which creates the stream), and is the subject under touchpoints.?") from None
    except TimeoutError:  # nats-py's timeout is one too
        if not nc.is_connected:  # the server went away (stopped, restarted): not the stream's limits
            raise UsageError(f"lost the connection to NATS at {shown} while publishing: is `engage up` still "
                             "running there? Sending the same file again is safe") from None
        raise UsageError(f"JetStream at {shown} did not acknowledge a publish within 5 s (a full disk, or a stream "
                         "at its limits?): see its log; sending the same file again is safe") from None
    except APIError as e:
        raise UsageError(f"JetStream at {shown} refused a publish: {e.description or e}; sending the same file "
                         "again is safe") from None
    finally:
        await nc.close()
    return counts


def _headers(line: bytes) -> dict[str, str] | None:
    found = event_id(line)
    return {"Nats-Msg-Id": found} if found else None
