"""`engage demo`: realistic touchpoints through NATS at a chosen rate, so the dashboard moves.

First a backfill of past activity (the benchmark workload of ops/bench/events.py, over the 60 days
before now), so the ladder, tiers and cases are populated at once; then a live stream stamped with
the current time, told as small stories:
- customers climbing the ladder: a purchase, then reactions and votes, posts and reviews, answers
  that get accepted, content shared and referrals that convert;
- anonymous social identities that mention the brand and are linked to a customer later;
- support cases opened, assigned to agents and teams, answered, escalated, solved, closed and rated,
  and some left waiting until their SLA is breached;
- ideas submitted, voted on and moved to planned and delivered; NPS survey answers;
- a few malformed events (broken JSON, schema errors), which the engine keeps as rejects.

`Simulation` is pure and seeded: the same seed gives the same events for the same clock.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from commands.instants import rfc3339
from engine.settings import UsageError, nats_servers, without_credentials
from ops.bench.events import CUSTOMERS, generate

SUBJECT = "touchpoints.demo"
CHANNELS = ("twitter", "instagram", "mastodon", "reddit")
TEAMS = ("billing", "delivery", "technical")
AGENTS = ("agent-ana", "agent-bo", "agent-chen", "agent-dee", "agent-eli")
PRODUCTS = ("p-kettle", "p-toaster", "p-blender", "p-grinder")


@dataclass
class _Open:
    case: str
    customer: str
    state: str  # new, open, pending, solved


@dataclass
class Simulation:
    """The live stories, one step at a time (`step(now)` returns the raw events of one step)."""

    seed: int
    customers: int = 400
    rng: random.Random = field(init=False)
    run: str = field(init=False)
    serial: int = 0
    cases: list[_Open] = field(default_factory=list)
    ideas: dict[str, str] = field(default_factory=dict)  # idea -> its author
    questions: list[tuple[str, str]] = field(default_factory=list)  # (question, asker)
    answers: list[tuple[str, str, str]] = field(default_factory=list)  # (question, answer, its author)
    referrals: list[tuple[str, str]] = field(default_factory=list)  # (referral, referrer)
    anonymous: list[tuple[str, str]] = field(default_factory=list)  # (channel, handle) not linked yet

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.run = f"{self.seed:x}{int(time.time()):x}"  # ids unique per run: a rerun adds, never conflicts

    def _customer(self) -> str:
        # The backfill's customers (cust-00000 …): a few very active ones, most rarely seen.
        return f"cust-{min(int(self.rng.paretovariate(1.2)) - 1, self.customers - 1):05d}"

    def _event(self, now: datetime, typ: str, data: dict[str, Any] | None = None, *, source: str,
               channel: str, customer: str | None = None, identity: dict[str, str] | None = None) -> bytes:
        self.serial += 1
        event: dict[str, Any] = {"id": f"demo:{self.run}:{self.serial:07d}", "type": typ,
                                 "occurred_at": rfc3339(now), "source": source, "channel": channel}
        if identity is not None:
            event["identity"] = identity
        else:
            event["customer"] = customer
        if data:
            event["data"] = data
        return json.dumps(event, separators=(",", ":")).encode()

    def step(self, now: datetime) -> list[bytes]:
        stories: list[tuple[float, Callable[[datetime], list[bytes]]]] = [
            (14, self._shop), (18, self._react), (8, self._community_post), (6, self._question),
            (6, self._answer), (3, self._accept), (4, self._idea), (3, self._idea_moves), (4, self._share),
            (3, self._refer), (2, self._convert), (5, self._survey), (7, self._mention), (2, self._link),
            (6, self._open_case), (10, self._work_case), (1.2, self._malformed), (1, self._prefer),
        ]
        weights = [w for w, _ in stories]
        story = self.rng.choices([s for _, s in stories], weights)[0]
        return story(now)

    # --- the stories -------------------------------------------------------------------------------

    def _shop(self, now: datetime) -> list[bytes]:
        data = {"order": f"o-{self.run}-{self.serial}", "amount_cents": self.rng.randrange(500, 25_000),
                "currency": self.rng.choice(("EUR", "USD", "GBP"))}
        return [self._event(now, "purchase.completed", data, source="shop", channel=self.rng.choice(("web", "store")),
                            customer=self._customer())]

    def _react(self, now: datetime) -> list[bytes]:
        if self.ideas and self.rng.random() < 0.4:
            idea = self.rng.choice(list(self.ideas))
            return [self._event(now, "idea.voted", {"idea": idea}, source="ideas", channel="portal",
                                customer=self._customer())]
        data = {"target": f"post-{self.rng.randrange(500)}", "kind": self.rng.choice(("like", "love", "insightful"))}
        return [self._event(now, "reaction.added", data, source="community", channel="forum",
                            customer=self._customer())]

    def _community_post(self, now: datetime) -> list[bytes]:
        if self.rng.random() < 0.5:
            data = {"product": self.rng.choice(PRODUCTS), "rating": self.rng.choice((2, 4, 5, 5, 5)),
                    "text": "Does what it says; the lid could be sturdier."}
            return [self._event(now, "review.posted", data, source="shop", channel="web", customer=self._customer())]
        data = {"thread": f"t-{self.rng.randrange(80)}", "title": "Descaling tips", "text": "Vinegar works well."}
        return [self._event(now, "post.published", data, source="community", channel="forum",
                            customer=self._customer())]

    def _question(self, now: datetime) -> list[bytes]:
        asker = self._customer()
        question = f"q-{self.run}-{self.serial}"
        self.questions.append((question, asker))
        return [self._event(now, "question.asked", {"question": question, "text": "How do I pair it?"},
                            source="community", channel="forum", customer=asker)]

    def _answer(self, now: datetime) -> list[bytes]:
        if not self.questions:
            return self._question(now)
        question, _ = self.rng.choice(self.questions[-50:])
        author, answer = self._customer(), f"a-{self.run}-{self.serial}"
        self.answers.append((question, answer, author))
        return [self._event(now, "answer.posted", {"question": question, "answer": answer, "text": "Hold the button."},
                            source="community", channel="forum", customer=author)]

    def _accept(self, now: datetime) -> list[bytes]:
        if not self.answers:
            return self._answer(now)
        question, answer, author = self.answers.pop(self.rng.randrange(len(self.answers)))
        return [self._event(now, "answer.accepted", {"question": question, "answer": answer}, source="community",
                            channel="forum", customer=author)]

    def _idea(self, now: datetime) -> list[bytes]:
        author, idea = self._customer(), f"idea-{self.run}-{self.serial}"
        self.ideas[idea] = author
        return [self._event(now, "idea.submitted", {"idea": idea, "title": "A quieter mode"}, source="ideas",
                            channel="portal", customer=author)]

    def _idea_moves(self, now: datetime) -> list[bytes]:
        if not self.ideas:
            return self._idea(now)
        idea = self.rng.choice(list(self.ideas))
        status = self.rng.choice(("under_review", "planned", "delivered", "declined"))
        author = self.ideas.pop(idea) if status in ("delivered", "declined") else self.ideas[idea]
        return [self._event(now, "idea.status_changed", {"idea": idea, "status": status}, source="ideas",
                            channel="portal", customer=author)]

    def _share(self, now: datetime) -> list[bytes]:
        return [self._event(now, "content.shared", {"url": f"https://brand.example/blog/{self.rng.randrange(40)}"},
                            source="community", channel="web", customer=self._customer())]

    def _refer(self, now: datetime) -> list[bytes]:
        referrer, referral = self._customer(), f"r-{self.run}-{self.serial}"
        self.referrals.append((referral, referrer))
        return [self._event(now, "referral.made", {"referral": referral}, source="shop", channel="web",
                            customer=referrer)]

    def _convert(self, now: datetime) -> list[bytes]:
        if not self.referrals:
            return self._refer(now)
        referral, referrer = self.referrals.pop(self.rng.randrange(len(self.referrals)))
        return [self._event(now, "referral.converted", {"referral": referral}, source="shop", channel="web",
                            customer=referrer)]

    def _survey(self, now: datetime) -> list[bytes]:
        nps = self.rng.choice((10, 9, 9, 8, 7, 6, 3, 0, 10, 9))
        return [self._event(now, "survey.answered", {"survey": "nps-q4", "nps": nps}, source="surveys",
                            channel="email", customer=self._customer())]

    def _mention(self, now: datetime) -> list[bytes]:
        channel = self.rng.choice(CHANNELS)
        handle = f"fan_{self.run[-4:]}_{self.serial}"
        self.anonymous.append((channel, handle))
        identity = {"channel": channel, "handle": "@" + handle}
        return [self._event(now, "mention.observed", {"text": "Loving my new kettle!"}, source="listening",
                            channel=channel, identity=identity)]

    def _link(self, now: datetime) -> list[bytes]:
        if not self.anonymous:
            return self._mention(now)
        channel, handle = self.anonymous.pop(0)
        return [self._event(now, "identity.linked", {"channel": channel, "handle": handle}, source="crm",
                            channel="web", customer=self._customer())]

    def _open_case(self, now: datetime) -> list[bytes]:
        customer, case = self._customer(), f"k-{self.run}-{self.serial}"
        self.cases.append(_Open(case, customer, "new"))
        priority = self.rng.choices(("low", "normal", "high", "urgent"), (2, 6, 3, 1))[0]
        return [self._event(now, "case.opened", {"case": case, "subject": "It stopped heating", "priority": priority},
                            source="helpdesk", channel=self.rng.choice(("email", "chat", "phone")), customer=customer)]

    def _work_case(self, now: datetime) -> list[bytes]:
        # About one case in five is left alone: its SLA is breached while the demo runs.
        waiting = [c for c in self.cases if c.state != "closed" and zlib.crc32(c.case.encode()) % 5 != 0]
        if not waiting:
            return self._open_case(now)
        c = self.rng.choice(waiting)
        agent = AGENTS[zlib.crc32(c.case.encode()) % len(AGENTS)]

        def on(typ: str, data: dict[str, Any]) -> bytes:
            return self._event(now, typ, {"case": c.case, **data}, source="helpdesk", channel="email",
                               customer=c.customer)

        if c.state == "new":
            c.state = "open"
            return [on("case.assigned", {"agent": agent, "team": self.rng.choice(TEAMS)})]
        if c.state == "open":
            c.state = "pending"
            replied = on("case.agent_replied", {"agent": agent, "text": "Could you send a photo of the plate?"})
            if self.rng.random() < 0.15:
                return [replied, on("case.escalated", {"priority": "urgent"})]
            return [replied]
        if c.state == "pending":
            c.state = "solved"
            return [on("case.customer_replied", {"text": "Here it is."}),
                    on("case.solved", {"resolution": "replacement sent"})]
        c.state = "closed"
        self.cases.remove(c)
        rating = self.rng.choice(("good", "good", "good", "bad"))
        return [on("case.closed", {}), on("case.rated", {"rating": rating})]

    def _prefer(self, now: datetime) -> list[bytes]:
        level = self.rng.choice(("transactional", "participant", "contributor", None))
        return [self._event(now, "preferences.stated", {"level": level}, source="crm", channel="web",
                            customer=self._customer())]

    def _malformed(self, now: datetime) -> list[bytes]:
        if self.rng.random() < 0.5:
            return [b'{"id": "demo-broken-' + str(self.serial).encode() + b'", "type": "purchase.completed", ']
        return [self._event(now, "review.posted", {"product": "p-kettle", "rating": 11}, source="shop", channel="web",
                            customer=self._customer())]


async def run_demo(url: str, *, rate: float, duration: float | None, history: int, seed: int,
                   say: Callable[[str], None] = print) -> Counter[str]:
    """Backfill `history` past events, then publish live stories at about `rate` events/s until
    `duration` seconds have passed (None: until SIGINT/SIGTERM). Returns what was published."""
    import nats
    from nats.errors import Error as NatsError
    from nats.errors import NoServersError

    async def quiet(_: Exception) -> None:
        return None

    try:
        nc = await nats.connect(nats_servers(url), connect_timeout=5, max_reconnect_attempts=1, error_cb=quiet)
    except (NoServersError, OSError) as e:
        raise UsageError(f"cannot reach NATS at {without_credentials(url)}: {e}; is `engage up` running there?") from e
    # Connected: from now on ride out restarts of the server forever (nats-py reads this option at
    # each reconnect; at the first connect, -1 would retry a wrong URL forever instead of saying so).
    nc.options["max_reconnect_attempts"] = -1
    js = nc.jetstream()
    sent: Counter[str] = Counter()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)

    async def publish(lines: list[bytes]) -> None:
        """Until JetStream acknowledged them all (or the demo is stopped): while the engine is
        down the publishes time out, and sending them again is safe (Nats-Msg-Id, event ids)."""
        waiting = False
        while True:
            try:
                acks = await asyncio.gather(*(js.publish(SUBJECT, line, headers=_headers(line)) for line in lines))
                break
            except NatsError as e:
                if not waiting:
                    say(f"engage demo: the engine does not answer ({type(e).__name__}); waiting for it")
                    waiting = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), 1)
                if stopping.is_set():
                    return
        if waiting:
            say("engage demo: the engine answers again")
        sent["published"] += sum(1 for ack in acks if not ack.duplicate)
        sent["already there"] += sum(1 for ack in acks if ack.duplicate)

    try:
        if history:
            workload = generate(history, seed=seed, customers=min(CUSTOMERS, 400),
                                anchor=datetime.now(UTC).replace(microsecond=0))
            for start in range(0, len(workload), 500):
                if stopping.is_set():
                    break
                await publish(workload.lines[start:start + 500])
            say(f"engage demo: backfilled {len(workload):,} events of the past 60 days")
        simulation = Simulation(seed)
        started = time.monotonic()
        live = 0
        report = started + 10
        while not stopping.is_set() and (duration is None or time.monotonic() - started < duration):
            lines = simulation.step(datetime.now(UTC))
            await publish(lines)
            live += len(lines)
            for line in lines:
                sent[_kind(line)] += 1
            if time.monotonic() >= report:
                say(f"engage demo: {live:,} live events ({live / (time.monotonic() - started):.1f}/s)")
                report += 10
            # Keep the average rate: sleep until the moment the next event is due.
            due = started + live / rate
            if due > time.monotonic():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=due - time.monotonic())
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await nc.close()
    return sent


def _headers(line: bytes) -> dict[str, str] | None:
    try:
        found = json.loads(line).get("id")
    except (ValueError, AttributeError):
        return None  # a malformed event: no id to deduplicate by
    return {"Nats-Msg-Id": found} if isinstance(found, str) else None


def _kind(line: bytes) -> str:
    try:
        return f"live {json.loads(line)['type']}"
    except (ValueError, KeyError, TypeError):
        return "live malformed"
