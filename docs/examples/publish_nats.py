"""Publish a few touchpoints to the engine over NATS JetStream, as a helpdesk and a listening tool would.

    python docs/examples/publish_nats.py --nats nats://127.0.0.1:4222

Needs nats-py (`pip install nats-py`). See docs/producers.md.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import PubAck

SUBJECT = "touchpoints.helpdesk"  # any subject under touchpoints.> reaches the engine
ATTEMPTS = 5


def touchpoints(run: str, now: datetime) -> list[dict[str, Any]]:
    """A support case as a helpdesk reports it, and a tweet a listening tool saw.

    Ids come from the source system (the ticket and its comment ids), so a resend carries the same
    id; `run` only keeps this demo's ids and case apart from an earlier run's."""

    def at(minutes_ago: int) -> str:
        return (now - timedelta(minutes=minutes_ago)).isoformat(timespec="milliseconds")  # ...+00:00

    case = f"T-{run}"
    return [
        {"id": f"helpdesk:{case}:opened", "type": "case.opened", "occurred_at": at(30),
         "source": "helpdesk", "channel": "email", "customer": "c-1042",
         "data": {"case": case, "subject": "Invoice shows the wrong VAT number", "priority": "high"}},
        {"id": f"helpdesk:{case}:comment-1", "type": "case.agent_replied", "occurred_at": at(20),
         "source": "helpdesk", "channel": "email", "customer": "c-1042",
         "data": {"case": case, "agent": "agent-7", "text": "Sorry about that: a corrected invoice is on its way."}},
        {"id": f"helpdesk:{case}:comment-2", "type": "case.customer_replied", "occurred_at": at(10),
         "source": "helpdesk", "channel": "email", "customer": "c-1042",
         "data": {"case": case, "text": "Got it, thanks!"}},
        {"id": f"listening:tweet-{run}", "type": "mention.observed", "occurred_at": at(5),
         "source": "listening", "channel": "twitter", "identity": {"channel": "twitter", "handle": "@AdaLovesTea"},
         "data": {"url": f"https://twitter.example/AdaLovesTea/status/{run}",
                  "text": "Support sorted my invoice in 20 minutes. Impressed."}},
    ]


async def publish(js: JetStreamContext, event: dict[str, Any]) -> PubAck:
    """Publish one event with its id as `Nats-Msg-Id` and wait for JetStream's acknowledgement.

    The ack means "stored in the stream", not "accepted": the engine decides later. On a timeout
    the message may or may not be stored, so it is sent again with the same id: JetStream drops a
    repeat within its duplicate window, and the engine counts a later one as a duplicate."""
    payload = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
    attempt = 1
    while True:
        try:
            # js.publish has no msg-id argument: the header is how JetStream learns the id.
            return await js.publish(SUBJECT, payload, timeout=5, headers={"Nats-Msg-Id": event["id"]})
        except (nats.errors.TimeoutError, nats.js.errors.NoStreamResponseError):
            # No answer, or no stream yet (the engine creates it at start): try again, same id.
            if attempt == ATTEMPTS:
                raise
            await asyncio.sleep(0.5 * 2**attempt)
            attempt += 1


async def main() -> int:
    parser = argparse.ArgumentParser(description="Publish a few touchpoints to the engine over NATS JetStream.")
    parser.add_argument("--nats", default="nats://127.0.0.1:4222", help="NATS server URL (default %(default)s)")
    args = parser.parse_args()

    async def report(e: Exception) -> None:  # nats-py's default prints a traceback per attempt
        print(f"nats: {e}", file=sys.stderr)

    try:
        # Reconnect for ever once connected (nats-py gives up after 60 attempts by default): the
        # engine restarts its NATS server when it restarts, and a producer must carry on when it is
        # back. With that setting nats-py also tries the first connection for ever: bound it here.
        nc = await asyncio.wait_for(nats.connect(args.nats, connect_timeout=5, max_reconnect_attempts=-1,
                                                 reconnect_time_wait=1, error_cb=report), timeout=10)
    except (TimeoutError, nats.errors.NoServersError, OSError) as e:
        print(f"cannot reach NATS at {args.nats}: {e or 'no answer within 10 s'}", file=sys.stderr)
        return 1
    js = nc.jetstream()
    events = touchpoints(uuid.uuid4().hex[:8], datetime.now(UTC))
    try:
        for event in events:
            ack = await publish(js, event)
            print(f"published {event['id']} ({event['type']}): stream {ack.stream}, seq {ack.seq}")
        # A producer that is unsure whether a publish went through sends it again, with the same id.
        again = await publish(js, events[0])
        if again.duplicate:
            print(f"resent {events[0]['id']}: JetStream dropped it as a duplicate")
        else:
            print(f"resent {events[0]['id']}: stored at seq {again.seq}; the engine will count it as a duplicate")
    except nats.errors.Error as e:
        print(f"publishing failed: {e!r}", file=sys.stderr)
        return 1
    finally:
        await nc.close()
    print(f"{len(events)} events stored by JetStream; the engine decides them on its own: "
          "see GET /health (log head) and GET /rejects")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
