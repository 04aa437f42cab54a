"""A realistic, deterministic touchpoint workload for benchmarks.

`generate(n)` makes `n` NDJSON-ready events (bytes, in send order) over the whole catalogue, the way
a shop, a community forum, a social-listening tool, a help desk and a CRM would send them: about
10,000 customers (a few very active, most rarely seen), ~20 % of events carried by a social
`identity` instead of a `customer`, `identity.linked` as identities get tied to customers, comments,
posts and reviews with personal text (encrypted by the engine), support cases that go through valid
lifecycles only (opened → assigned → agent_replied → … → solved → closed → rated), a few erasures,
~1 % schema errors and ~1 % duplicates (re-sent byte for byte, or re-encoded with the same content:
another offset for the same instant, an `@` and other case on a handle, a default spelled out).
`occurred_at` lies in the 60 days before the start of the current UTC day.

The same seed and day give the same bytes. `expected_outcomes` replays the workload through the
engine's own pure write-side rules (`commands.parsing.parse`, `commands.decisions.decide`,
`commands.cases.apply`) with an in-memory view, and `check` raises unless every event ends as the
generator meant: accepted, duplicate, or rejected `schema`.

Self-test: `python -m ops.bench.events [--events N] [--seed S]`.
"""
from __future__ import annotations

import argparse
import bisect
import json
import random
import string
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from commands.cases import Case, apply
from commands.decisions import decide, erased_customer
from commands.outcomes import Duplicate, Rejected
from commands.parsing import content_digest, parse
from commands.touchpoints import case_id

SEED = 20251123
CUSTOMERS = 10_000
DAYS = 60

Event = dict[str, Any]

# --- vocabulary --------------------------------------------------------------------------------

_WORDS = tuple(
    " ".join((
        "the app crashes when I open my order history after the update and I lost the saved cart",
        "really love the new dashboard but exporting to csv takes ages on large projects",
        "thanks for the quick answer this solved it for me great support team as usual",
        "is there a way to share a board with someone outside our organisation without a licence",
        "the delivery was two days late and the box was damaged but the product itself works fine",
        "we switched from a competitor last month and the onboarding was smooth",
        "dark mode please my eyes will thank you battery drain seems higher since version four",
        "café déjà vu naïve über straße smörgåsbord jalapeño",
    )).split(" ")
)
_EMOJI = ("🙂", "🚀", "👍", "🔥", "😅", "❤️")
_FIRST = ("Ada", "Grace", "Linus", "Margaret", "Alan", "Chen", "Amara", "José", "Zoë", "Søren", "Priya", "Kenji")
_LAST = ("Lovelace", "Hopper", "Torvalds", "Hamilton", "Turing", "Wei", "Okafor", "García", "Müller", "Kierkegaard")
_LOCALES = ("en-GB", "en-US", "de-DE", "fr-FR", "es-ES", "ja-JP", "pt-BR")
_SOCIAL = ("twitter", "instagram", "reddit", "tiktok", "mastodon")
_REACTIONS = ("like", "love", "insightful", "funny", "celebrate")
_CURRENCIES = ("EUR", "EUR", "EUR", "USD", "USD", "GBP", "CHF")
_AGENTS = tuple(f"agent-{i:02d}" for i in range(1, 41))
_TEAMS = ("tier1", "tier2", "billing", "returns")
_SURVEYS = ("nps-2025-q3", "nps-2025-q4", "onboarding-30d", "support-csat")
_PRODUCTS = tuple(f"sku-{i:05d}" for i in range(1, 801))

# Weights of what a customer-carried event is (case events are decided separately).
_CUSTOMER_MIX: tuple[tuple[str, float], ...] = (
    ("purchase.completed", 16),
    ("comment.posted", 13),
    ("reaction.added", 12),
    ("idea.voted", 6),
    ("review.posted", 6),
    ("survey.answered", 5),
    ("post.published", 4),
    ("question.asked", 3),
    ("answer.posted", 3),
    ("answer.accepted", 1),
    ("event.attended", 2),
    ("content.shared", 2),
    ("referral.made", 2),
    ("referral.converted", 1),
    ("idea.submitted", 1),
    ("idea.status_changed", 0.5),
    ("identity.linked", 2),
    ("preferences.stated", 0.6),
    ("consent.changed", 0.6),
)
# What the listening tool and the community see from social identities.
_IDENTITY_MIX: tuple[tuple[str, float], ...] = (
    ("mention.observed", 10),
    ("reaction.added", 6),
    ("comment.posted", 4),
    ("content.shared", 3),
    ("post.published", 1),
)
IDENTITY_SHARE = 0.20
CASE_SHARE = 0.14  # of all events, the support-case lifecycle events
BAD_SHARE = 0.01
DUPLICATE_SHARE = 0.01
OPEN_CASES = 300  # cases in flight at once, roughly


@dataclass
class Workload:
    """The events in send order, with what the generator meant each one to end as."""

    lines: list[bytes] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)  # touchpoints.<source>
    keys: list[str] = field(default_factory=list)  # the normalised profile key (keeps per-profile order)
    intended: list[str] = field(default_factory=list)  # "accepted", "duplicate" or "schema"
    types: Counter[str] = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self.lines)

    def add(self, event: Event, key: str, intended: str, raw: bytes | None = None) -> None:
        line = raw if raw is not None else json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        self.lines.append(line)
        self.ids.append(str(event.get("id")))
        self.subjects.append(f"touchpoints.{event.get('source', 'unknown')}")
        self.keys.append(key)
        self.intended.append(intended)
        self.types[str(event.get("type"))] += 1

    def ndjson(self, start: int = 0, stop: int | None = None) -> bytes:
        return b"".join(line + b"\n" for line in self.lines[start:stop])

    def identity_share(self) -> float:
        carried = sum(1 for line in self.lines if b'"identity":{' in line)
        return carried / max(1, len(self.lines))


@dataclass
class _Case:
    case: str
    owner: Event  # {"customer": ...} or {"identity": {...}}
    key: str
    source: str
    channel: str
    at: datetime
    script: list[str]


class _Generator:
    def __init__(self, n: int, seed: int, customers: int, anchor: datetime) -> None:
        self.n = n
        self.rng = random.Random(seed)
        self.anchor = anchor
        self.out = Workload()
        self.seq = 0
        self.customers = [f"cust-{i:05d}" for i in range(1, customers + 1)]
        # A few very active customers, most rarely seen (Zipf-like, s = 0.9).
        weights = [1 / (rank ** 0.9) for rank in range(1, customers + 1)]
        self.rng.shuffle(self.customers)
        self.cum = [0.0] * customers
        total = 0.0
        for i, w in enumerate(weights):
            total += w
            self.cum[i] = total
        self.seen: set[str] = set()
        self.erased: set[str] = set()
        # Social identities: ~40 % of customers have one, plus strangers the listening tool sees.
        self.identities: list[tuple[str, str, str | None]] = []  # (channel, handle as sent, owner)
        for cust in self.customers:
            if self.rng.random() < 0.4:
                self.identities.append((self.rng.choice(_SOCIAL), self._handle(), cust))
        for _ in range(customers // 3):
            self.identities.append((self.rng.choice(_SOCIAL), self._handle(), None))
        self.linked: set[tuple[str, str]] = set()
        self.cases: list[_Case] = []
        self.case_no = 0
        self.threads: list[str] = [f"t-{i:05d}" for i in range(1, 201)]
        self.questions: list[str] = []
        self.answers: list[tuple[str, str, str]] = []  # (question, answer, author)
        self.ideas: list[tuple[str, str]] = []  # (idea, author)
        self.referrals: list[tuple[str, str]] = []  # (referral, referrer)
        self.recent: list[tuple[Event, str]] = []  # accepted events a producer might re-send
        self.erasures_left = max(1, n // 20_000)

    # --- small pieces -----------------------------------------------------------------------------

    def _handle(self) -> str:
        first = self.rng.choice(_FIRST)
        name = "".join(c for c in first if c in string.ascii_letters) or "user"
        style = self.rng.random()
        if style < 0.4:
            return f"{name}{self.rng.randint(1, 9999)}"
        if style < 0.7:
            return f"{name.lower()}_{self.rng.choice(_LAST).lower()[:4]}{self.rng.randint(1, 99)}"
        return f"The{name}{self.rng.choice(('Dev', 'Fan', 'Pro', 'HQ'))}"

    def _text(self, lo: int, hi: int) -> str:
        length = self.rng.randint(lo, hi)
        words: list[str] = []
        size = 0
        while size < length:
            word = self.rng.choice(_WORDS)
            words.append(word)
            size += len(word) + 1
        text = " ".join(words)
        text = text[:1].upper() + text[1:]
        if self.rng.random() < 0.15:
            text += " " + self.rng.choice(_EMOJI)
        return text + self.rng.choice((".", "!", "?", "."))

    def _id(self, source: str) -> str:
        self.seq += 1
        return f"{source}:{self.seq:08d}-{self.rng.getrandbits(32):08x}"

    def _when(self) -> datetime:
        seconds = self.rng.uniform(0, DAYS * 86_400)
        return self.anchor - timedelta(seconds=seconds)

    def _stamp(self, at: datetime) -> str:
        """RFC 3339 as producers write it: mostly `Z`, some with milliseconds, some with an offset."""
        style = self.rng.random()
        if style < 0.6:
            return at.strftime("%Y-%m-%dT%H:%M:%SZ")
        if style < 0.85:
            return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"
        offset = timezone(timedelta(hours=self.rng.choice((-5, 1, 2, 9)), minutes=self.rng.choice((0, 0, 30))))
        return at.astimezone(offset).isoformat(timespec="seconds")

    def _customer(self) -> str:
        while True:
            i = bisect.bisect_left(self.cum, self.rng.random() * self.cum[-1])
            cust = self.customers[min(i, len(self.customers) - 1)]
            if cust not in self.erased:
                return cust

    def _alive(self, customer: str) -> bool:
        return customer not in self.erased

    def _base(self, typ: str, source: str, channel: str, owner: Event, at: datetime | None = None) -> Event:
        event: Event = {"id": self._id(source), "type": typ, "occurred_at": self._stamp(at or self._when()),
                        "source": source, "channel": channel}
        event.update(owner)
        return event

    def _emit(self, event: Event, key: str) -> None:
        self.out.add(event, key, "accepted")
        if len(self.recent) >= 5000:
            self.recent[self.rng.randrange(len(self.recent))] = (event, key)
        else:
            self.recent.append((event, key))

    # --- the mix ------------------------------------------------------------------------------------

    def run(self) -> Workload:
        n = self.n
        while len(self.out) < n - 1:
            roll = self.rng.random()
            if roll < BAD_SHARE:
                self._bad()
            elif roll < BAD_SHARE + DUPLICATE_SHARE and self.recent:
                self._duplicate()
            elif roll < BAD_SHARE + DUPLICATE_SHARE + CASE_SHARE:
                self._case_step()
            elif self.erasures_left and self.rng.random() < self.erasures_left / max(1, n - len(self.out)):
                self._erase()
            elif self.rng.random() < IDENTITY_SHARE / (1 - BAD_SHARE - DUPLICATE_SHARE - CASE_SHARE) * 0.93:
                self._identity_event()
            else:
                self._customer_event()
        # The last event is a fresh accepted one: when the log's head reaches the expected count,
        # everything sent before it has been decided too.
        cust = self._customer()
        self._emit(self._purchase(cust), cust)
        return self.out

    def _pick(self, mix: tuple[tuple[str, float], ...]) -> str:
        total = sum(w for _, w in mix)
        roll = self.rng.random() * total
        for name, weight in mix:
            roll -= weight
            if roll < 0:
                return name
        return mix[-1][0]

    def _purchase(self, cust: str) -> Event:
        event = self._base("purchase.completed", "shop", self.rng.choice(("web", "web", "app", "store")),
                           {"customer": cust})
        event["data"] = {"order": f"o-{self.rng.getrandbits(40):010x}", "amount_cents": self.rng.randint(199, 49_999),
                         "currency": self.rng.choice(_CURRENCIES)}
        return event

    def _customer_event(self) -> None:
        cust = self._customer()
        if cust not in self.seen:
            self.seen.add(cust)
            if self.rng.random() < 0.6:
                first, last = self.rng.choice(_FIRST), self.rng.choice(_LAST)
                event = self._base("customer.registered", "crm", "web", {"customer": cust})
                data = {"name": f"{first} {last}", "locale": self.rng.choice(_LOCALES)}
                if self.rng.random() < 0.8:
                    data["email"] = f"{first.lower()}.{last.lower()}@example.org"
                event["data"] = data
                self._emit(event, cust)
                return
        typed = self._customer_typed(self._pick(_CUSTOMER_MIX), cust)
        chosen = typed if typed is not None else self._purchase(cust)
        self._emit(chosen, str(chosen["customer"]))

    def _customer_typed(self, typ: str, cust: str) -> Event | None:
        rng = self.rng
        owner: Event = {"customer": cust}
        if typ == "purchase.completed":
            return self._purchase(cust)
        if typ in ("comment.posted", "reaction.added", "post.published", "question.asked", "answer.posted",
                   "answer.accepted"):
            event = self._base(typ, "community", "forum", owner)
            return self._community_data(event, cust)
        if typ == "idea.voted":
            event = self._base(typ, "ideas", "portal", owner)
            event["data"] = {"idea": rng.choice(self.ideas)[0] if self.ideas else f"i-{rng.randint(1, 50):04d}"}
            return event
        if typ == "idea.submitted":
            idea = f"i-{len(self.ideas) + 100:04d}"
            self.ideas.append((idea, cust))
            event = self._base(typ, "ideas", "portal", owner)
            event["data"] = {"idea": idea, "title": self._text(15, 60)}
            return event
        if typ == "idea.status_changed":
            alive = [(i, a) for i, a in self.ideas[-50:] if self._alive(a)]
            if not alive:
                return None
            idea, author = rng.choice(alive)
            event = self._base(typ, "ideas", "portal", {"customer": author})
            event["data"] = {"idea": idea, "status": rng.choice(("under_review", "planned", "delivered", "declined"))}
            return event
        if typ == "review.posted":
            event = self._base(typ, "shop", "web", owner)
            rating = rng.choices((5, 4, 3, 2, 1), (45, 25, 12, 8, 10))[0]
            data: Event = {"product": rng.choice(_PRODUCTS), "rating": rating}
            if rng.random() < 0.7:
                data["text"] = self._text(30, 500)
            event["data"] = data
            return event
        if typ == "survey.answered":
            event = self._base(typ, "surveys", "email", owner)
            roll = rng.random()
            nps: int | None = rng.randint(0, 10) if roll < 0.9 else None
            event["data"] = {"survey": rng.choice(_SURVEYS)} if roll > 0.95 else {"survey": rng.choice(_SURVEYS),
                                                                                  "nps": nps}
            return event
        if typ == "event.attended":
            event = self._base(typ, "events", "meetup", owner)
            event["data"] = {"event": f"meetup-{rng.randint(1, 40):03d}"}
            return event
        if typ == "content.shared":
            event = self._base(typ, "listening", rng.choice(("twitter", "linkedin")), owner)
            event["data"] = {"url": f"https://example.org/blog/{rng.randint(1, 300)}"}
            return event
        if typ == "referral.made":
            ref = f"ref-{rng.getrandbits(32):08x}"
            self.referrals.append((ref, cust))
            event = self._base(typ, "shop", "web", owner)
            event["data"] = {"referral": ref}
            return event
        if typ == "referral.converted":
            alive = [(r, who) for r, who in self.referrals[-200:] if self._alive(who)]
            if not alive:
                return None
            ref, referrer = rng.choice(alive)
            event = self._base(typ, "shop", "web", {"customer": referrer})
            event["data"] = {"referral": ref}
            return event
        if typ == "identity.linked":
            channel, handle, owned_by = rng.choice(self.identities)
            if owned_by is None or not self._alive(owned_by):
                return None
            self.linked.add((channel, handle))
            event = self._base(typ, "crm", "web", {"customer": owned_by})
            event["data"] = {"channel": channel, "handle": rng.choice((handle, "@" + handle))}
            return event
        if typ == "preferences.stated":
            event = self._base(typ, "crm", "email", owner)
            event["data"] = {"level": rng.choice(("transactional", "participant", "contributor", None))}
            return event
        if typ == "consent.changed":
            event = self._base(typ, "crm", "web", owner)
            event["data"] = {"purpose": rng.choice(("profiling", "marketing", "community_profile")),
                             "granted": rng.random() < 0.8}
            return event
        raise AssertionError(typ)

    def _community_data(self, event: Event, author: str | None) -> Event | None:
        rng = self.rng
        typ = event["type"]
        if typ == "comment.posted":
            data: Event = {"thread": rng.choice(self.threads)}
            if rng.random() < 0.9:
                data["text"] = self._text(20, 600)
        elif typ == "reaction.added":
            data = {"target": f"{rng.choice(self.threads)}/c{rng.randint(1, 60)}", "kind": rng.choice(_REACTIONS)}
        elif typ == "post.published":
            thread = f"t-{len(self.threads) + 1:05d}"
            self.threads.append(thread)
            data = {"thread": thread, "title": self._text(15, 70), "text": self._text(80, 1200)}
        elif typ == "question.asked":
            question = f"q-{len(self.questions) + 1:05d}"
            self.questions.append(question)
            data = {"question": question, "text": self._text(40, 500)}
        elif typ == "answer.posted":
            if not self.questions or author is None:
                return None
            question = rng.choice(self.questions[-300:])
            answer = f"a-{len(self.answers) + 1:05d}"
            self.answers.append((question, answer, author))
            data = {"question": question, "answer": answer, "text": self._text(30, 700)}
        elif typ == "answer.accepted":
            alive = [a for a in self.answers[-300:] if self._alive(a[2])]
            if not alive:
                return None
            question, answer, author = rng.choice(alive)
            event["customer"] = author
            data = {"question": question, "answer": answer}
        else:
            raise AssertionError(typ)
        event["data"] = data
        return event

    def _identity_event(self) -> None:
        channel, handle, _ = self.rng.choice(self.identities)
        sent = handle if self.rng.random() < 0.7 else "@" + handle
        owner: Event = {"identity": {"channel": channel.capitalize() if self.rng.random() < 0.1 else channel,
                                     "handle": sent}}
        key = f"~{channel}:{handle.casefold()}"
        typ = self._pick(_IDENTITY_MIX)
        if typ == "mention.observed":
            event = self._base(typ, "listening", channel, owner)
            data: Event = {"url": f"https://{channel}.example/{handle}/status/{self.rng.getrandbits(48)}"}
            if self.rng.random() < 0.95:
                data["text"] = self._text(20, 280)
            event["data"] = data
        elif typ == "content.shared":
            event = self._base(typ, "listening", channel, owner)
            event["data"] = {"url": f"https://example.org/blog/{self.rng.randint(1, 300)}"}
        else:
            community = self._community_data(self._base(typ, "community", "forum", owner), None)
            assert community is not None
            event = community
        self._emit(event, key)

    def _erase(self) -> None:
        self.erasures_left -= 1
        cust = self._customer()
        self.erased.add(cust)
        self.cases = [c for c in self.cases if c.owner.get("customer") != cust]
        self._emit(self._base("customer.erased", "crm", "email", {"customer": cust}), cust)

    # --- support cases ------------------------------------------------------------------------------

    def _case_step(self) -> None:
        rng = self.rng
        if not self.cases or (len(self.cases) < OPEN_CASES and rng.random() < 0.35):
            self._open_case()
            return
        i = rng.randrange(len(self.cases))
        case = self.cases[i]
        typ = case.script.pop(0)
        case.at = min(case.at + timedelta(minutes=rng.randint(1, 900)), self.anchor - timedelta(seconds=1))
        agent_side = typ in ("case.assigned", "case.agent_replied", "case.note_added", "case.put_on_hold",
                             "case.escalated", "case.solved", "case.closed", "case.reopened")
        channel = "agent_desk" if agent_side else case.channel
        event = self._base(typ, case.source, channel, case.owner, case.at)
        data: Event = {"case": case.case}
        if typ == "case.assigned":
            data["agent"] = rng.choice(_AGENTS)
            if rng.random() < 0.7:
                data["team"] = rng.choice(_TEAMS)
        elif typ in ("case.agent_replied", "case.note_added"):
            data["agent"] = rng.choice(_AGENTS)
            data["text"] = self._text(40, 800)
        elif typ == "case.customer_replied":
            data["text"] = self._text(20, 500)
        elif typ == "case.escalated":
            data["priority"] = rng.choice(("high", "urgent"))
        elif typ == "case.solved" and rng.random() < 0.5:
            data["resolution"] = rng.choice(("answered", "refunded", "replaced", "bug filed", "duplicate"))
        elif typ == "case.rated":
            data["rating"] = "good" if rng.random() < 0.8 else "bad"
        event["data"] = data
        if not case.script:
            self.cases.pop(i)
        self._emit(event, case.key)

    def _open_case(self) -> None:
        rng = self.rng
        self.case_no += 1
        case_no = f"k-{self.case_no:06d}"
        if rng.random() < 0.15:
            channel, handle, _ = rng.choice(self.identities)
            owner: Event = {"identity": {"channel": channel, "handle": handle}}
            key, source, via = f"~{channel}:{handle.casefold()}", "helpdesk", channel
        else:
            cust = self._customer()
            owner, key, source = {"customer": cust}, cust, "helpdesk"
            via = rng.choice(("email", "chat", "phone", "web"))
        at = self.anchor - timedelta(seconds=rng.uniform(3 * 86_400, DAYS * 86_400))
        script = ["case.assigned", "case.agent_replied"]
        for _ in range(rng.choice((0, 0, 1, 1, 2))):
            script += ["case.customer_replied", "case.agent_replied"]
        if rng.random() < 0.2:
            script.insert(rng.randint(1, len(script)), "case.note_added")
        if rng.random() < 0.08:
            script.insert(rng.randint(1, len(script)), "case.escalated")
        if rng.random() < 0.06:
            script += ["case.put_on_hold"]
        script.append("case.solved")
        if rng.random() < 0.1:  # the customer comes back: solved → open
            script += ["case.customer_replied", "case.agent_replied", "case.solved"]
        if rng.random() < 0.8:
            script.append("case.closed")
        if rng.random() < 0.45:
            script.append("case.rated")
        event = self._base("case.opened", source, via, owner, at)
        data: Event = {"case": case_no, "subject": self._text(15, 80)}
        if rng.random() < 0.6:
            data["priority"] = rng.choice(("low", "normal", "normal", "high", "urgent"))
        event["data"] = data
        self.cases.append(_Case(case_no, owner, key, source, via, at, script))
        self._emit(event, key)

    # --- noise ----------------------------------------------------------------------------------------

    def _bad(self) -> None:
        """A schema error, as a producer's bug makes one (stateless types only: no case is touched)."""
        rng = self.rng
        cust = self._customer()
        kind = rng.randrange(8)
        if kind == 0:
            event = self._base("review.posted", "shop", "web", {"customer": cust})
            event["data"] = {"product": rng.choice(_PRODUCTS), "rating": rng.choice((0, 6, 10))}
        elif kind == 1:
            event = self._purchase(cust)
            event["data"]["currency"] = event["data"]["currency"].lower()
        elif kind == 2:
            event = self._purchase(cust)
            event["data"]["amount_cents"] = -event["data"]["amount_cents"]
        elif kind == 3:
            event = self._base("comment.posted", "community", "forum", {"customer": cust})
            event["data"] = {"thread": rng.choice(self.threads), "body": self._text(10, 80)}  # unknown field
        elif kind == 4:
            event = self._base("idea.voted", "ideas", "portal", {"customer": cust})
            event["occurred_at"] = event["occurred_at"][:19]  # no offset
        elif kind == 5:
            event = self._base("reaction.added", "community", "Forum", {"customer": cust})  # channel not a token
            event["data"] = {"target": rng.choice(self.threads), "kind": "like"}
        elif kind == 6:
            event = self._base("survey.answered", "surveys", "email", {"customer": cust})
            event["data"] = {"survey": rng.choice(_SURVEYS), "nps": "9"}
        else:
            event = self._base("mention.observed", "listening", "twitter", {"customer": cust})
            event["identity"] = {"channel": "twitter", "handle": "someone"}  # both carriers
        self.out.add(event, cust, "schema")

    def _duplicate(self) -> None:
        """A producer's retry: the same bytes, or the same content written differently."""
        event, key = self.rng.choice(self.recent)
        if self.rng.random() < 0.6:
            self.out.add(event, key, "duplicate")
            return
        again = dict(event)
        at = datetime.fromisoformat(str(event["occurred_at"]).replace("Z", "+00:00"))
        again["occurred_at"] = at.astimezone(timezone(timedelta(hours=2))).isoformat()
        ident = event.get("identity")
        if isinstance(ident, dict):
            again["identity"] = {"handle": "@" + str(ident["handle"]).lstrip("@").upper(),
                                 "channel": str(ident["channel"]).upper()}
        data = event.get("data")
        if event["type"] == "case.opened" and isinstance(data, dict) and "priority" not in data:
            again["data"] = {**data, "priority": "normal"}
        keys = list(again)
        self.rng.shuffle(keys)
        self.out.add({k: again[k] for k in keys}, key, "duplicate")


def anchor_now() -> datetime:
    """The start of the current UTC day: events lie in the 60 days before it."""
    now = datetime.now(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def generate(n: int, *, seed: int = SEED, customers: int = CUSTOMERS, anchor: datetime | None = None) -> Workload:
    if n < 1:
        raise ValueError("n must be at least 1")
    return _Generator(n, seed, customers, anchor or anchor_now()).run()


# --- what the engine must decide ------------------------------------------------------------------


class _MemoryView:
    """commands.decisions.WriteView over dicts: what engine.log keeps in its side tables."""

    def __init__(self) -> None:
        self.ids: dict[str, tuple[bytes, int]] = {}
        self.cases: dict[str, Case] = {}
        self.erased: set[str] = set()

    def logged(self, event_id: str) -> tuple[bytes, int] | None:
        return self.ids.get(event_id)

    def case(self, case: str) -> Case | None:
        return self.cases.get(case)

    def is_erased(self, customer: str) -> bool:
        return customer in self.erased


def expected_outcomes(workload: Workload, now: datetime | None = None) -> list[str]:
    """Each event's outcome in send order, by the engine's own rules: "accepted", "duplicate" or
    the reject reason."""
    now = now or datetime.now(UTC)
    view = _MemoryView()
    outcomes: list[str] = []
    position = 0
    for raw in workload.lines:
        tp = parse(raw, now)
        if isinstance(tp, Rejected):
            outcomes.append(tp.reason)
            continue
        digest = content_digest(tp)
        verdict = decide(tp, digest, view)
        if isinstance(verdict, Rejected):
            outcomes.append(verdict.reason)
            continue
        if isinstance(verdict, Duplicate):
            outcomes.append("duplicate")
            continue
        position += 1
        view.ids[tp.id] = (digest, position)
        case = case_id(tp)
        if case is not None:
            view.cases[case] = apply(view.cases.get(case), tp)
        gone = erased_customer(tp)
        if gone is not None:
            view.erased.add(gone)
        outcomes.append("accepted")
    return outcomes


def check(workload: Workload, now: datetime | None = None) -> Counter[str]:
    """The outcome counts, after making sure every event ends as the generator meant."""
    outcomes = expected_outcomes(workload, now)
    wrong = [(i, want, got) for i, (want, got) in enumerate(zip(workload.intended, outcomes, strict=True))
             if want != got]
    if wrong:
        i, want, got = wrong[0]
        raise ValueError(
            f"{len(wrong)} generated events would not end as meant; the first, #{i}, meant {want} "
            f"but is {got}: {workload.lines[i][:300]!r}"
        )
    return Counter(outcomes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench.events", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", help="write the NDJSON here ('-' for standard output)")
    args = parser.parse_args(argv)
    workload = generate(args.events, seed=args.seed)
    outcomes = check(workload)
    if args.out == "-":
        sys.stdout.buffer.write(workload.ndjson())
        return 0
    if args.out:
        with open(args.out, "wb") as f:
            f.write(workload.ndjson())
    size = sum(len(line) for line in workload.lines)
    print(f"{len(workload)} events, {size / len(workload):.0f} bytes on average, "
          f"{len(set(workload.keys))} profiles, {workload.identity_share():.1%} carried by an identity")
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in outcomes.most_common()))
    print("types:    " + ", ".join(f"{k} {v}" for k, v in workload.types.most_common()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
