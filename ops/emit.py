"""`engage emit`: publish a file of events (NDJSON) over HTTP or NATS, as a producer would."""
from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx
import msgspec

from engine.settings import UsageError, nats_servers, without_credentials

HTTP_BATCH = 1000
NATS_WINDOW = 256
SUBJECT = "touchpoints.emit"


def batches(lines: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        batch.append(line)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


async def emit_http(url: str, lines: Iterable[bytes], progress: Callable[[int], None], *,
                    token: str | None = None, counts: Counter[str] | None = None) -> Counter[str]:
    """POST NDJSON batches of 1,000; counts every outcome the engine answered (into `counts`, which
    holds what was answered so far when this stops on an error). `token`: a producer's, for an
    engine run with --auth."""
    counts = Counter() if counts is None else counts
    sent = 0
    headers = {} if token is None else {"authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url.rstrip("/"), timeout=120, headers=headers) as client:
        for batch in batches(lines, HTTP_BATCH):
            try:
                r = await client.post("/events", content=b"\n".join(batch) + b"\n",
                                      headers={"content-type": "application/x-ndjson"})
            except httpx.HTTPError as e:
                raise UsageError(f"cannot reach {url}: {e}; is `engage up` running there?") from e
            if r.status_code in (401, 403):
                raise UsageError(f"{url}/events refused the token ({r.status_code}): give a producer's with --token")
            if r.status_code != 200:
                raise UsageError(f"{url}/events answered {r.status_code}: {r.text[:200]}")
            answer = r.json()
            counts["accepted"] += answer["accepted"]
            counts["duplicate"] += answer["duplicates"]
            for item in answer["rejected"]:
                counts[item["reason"]] += 1
            sent += len(batch)
            progress(sent)
    return counts


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
    `counts`, as emit_http). The engine decides outcomes asynchronously: they show in /stats and
    /rejects. `login`: (user, password), when they are not in the URL."""
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
    try:
        for window in batches(lines, NATS_WINDOW):
            acks = await asyncio.gather(*(
                js.publish(subject, line, headers=_headers(line)) for line in window
            ))
            for ack in acks:
                counts["deduplicated by JetStream" if ack.duplicate else "published"] += 1
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
