"""Send a few touchpoints to the engine over HTTP, as a web shop and a community forum would.

    python docs/examples/post_http.py --http http://127.0.0.1:8080

Needs httpx (`pip install httpx`). See docs/producers.md.
"""
from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

ATTEMPTS = 5


def touchpoints(run: str, now: datetime) -> list[dict[str, Any]]:
    """A sign-up, a purchase and a review from the shop, a forum post, and one event with a typo.

    Ids come from the source system (order and review numbers), so a resend carries the same id;
    `run` only keeps this demo's ids apart from an earlier run's."""

    def at(minutes_ago: int) -> str:
        return (now - timedelta(minutes=minutes_ago)).isoformat(timespec="seconds")  # ...+00:00

    return [
        {"id": f"shop:signup-{run}", "type": "customer.registered", "occurred_at": at(60),
         "source": "shop", "channel": "web", "customer": "c-1042",
         "data": {"name": "Ada Lovelace", "email": "ada@example.org", "locale": "en-GB"}},
        {"id": f"shop:order-{run}", "type": "purchase.completed", "occurred_at": at(45),
         "source": "shop", "channel": "web", "customer": "c-1042",
         "data": {"order": f"o-{run}", "amount_cents": 4990, "currency": "EUR"}},
        {"id": f"shop:review-{run}", "type": "review.posted", "occurred_at": at(30),
         "source": "shop", "channel": "web", "customer": "c-1042",
         "data": {"product": "teapot-classic", "rating": 5, "text": "Pours without a drip."}},
        {"id": f"community:post-{run}", "type": "post.published", "occurred_at": at(15),
         "source": "community", "channel": "forum", "identity": {"channel": "forum", "handle": "ada_l"},
         "data": {"thread": "brewing-tips", "title": "Green tea at 80 °C", "text": "Never boiling water."}},
        # A mistake, to show how a rejection reads: `amount` is not a field of purchase.completed.
        {"id": f"shop:order-{run}-typo", "type": "purchase.completed", "occurred_at": at(5),
         "source": "shop", "channel": "web", "customer": "c-1042",
         "data": {"order": f"o-{run}-2", "amount": 1200, "currency": "EUR"}},
    ]


def post_events(client: httpx.Client, events: list[dict[str, Any]]) -> dict[str, Any]:
    """POST up to 1,000 events as one JSON array; the answer comes after the durable commit.

    No answer, or a 5xx, leaves it unknown what was committed: send the same events again. Their
    ids make that safe, since an event already in the log comes back as a duplicate."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            r = client.post("/events", json=events)
        except httpx.TransportError as e:
            problem = f"no answer ({e})"
        else:
            if r.status_code == 200:
                answer: dict[str, Any] = r.json()
                return answer
            if r.status_code < 500:  # 400, 413, 415: the request itself is wrong; resending will not help
                body = r.json()
                raise SystemExit(f"POST /events refused: {r.status_code} {body['error']}: {body['detail']}")
            problem = f"HTTP {r.status_code}"
        if attempt < ATTEMPTS:
            print(f"POST /events: {problem}; retrying", file=sys.stderr)
            time.sleep(0.5 * 2**attempt)
    raise SystemExit(f"POST /events: {problem} after {ATTEMPTS} attempts")


def show(what: str, events: list[dict[str, Any]], answer: dict[str, Any]) -> None:
    print(f"{what}: accepted {answer['accepted']}, duplicates {answer['duplicates']}, "
          f"rejected {len(answer['rejected'])}")
    for item in answer["rejected"]:
        # `index` is the event's place in what was sent (0-based); `id` is null when none was readable.
        print(f"  #{item['index']} {item['id']} ({events[item['index']]['type']}): {item['reason']}: {item['detail']}")


def main() -> int:
    parser = argparse.ArgumentParser(description="Send a few touchpoints to the engine over HTTP.")
    parser.add_argument("--http", default="http://127.0.0.1:8080", help="the engine's HTTP API (default %(default)s)")
    args = parser.parse_args()

    events = touchpoints(uuid.uuid4().hex[:8], datetime.now(UTC))
    with httpx.Client(base_url=args.http, timeout=30) as client:
        show(f"POST /events ({len(events)} events)", events, post_events(client, events))
        # A retry of the same request, as after a timeout: nothing is appended twice.
        show("the same again (a retry)", events, post_events(client, events))
    return 0


if __name__ == "__main__":
    sys.exit(main())
