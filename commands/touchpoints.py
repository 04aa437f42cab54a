"""The touchpoint catalogue of SPEC §1 as msgspec Structs: one schema for the wire, the log and the rules."""
from __future__ import annotations

import typing
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, NamedTuple, TypeVar

import msgspec
from msgspec import UNSET, Meta, UnsetType


class Strict(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Every wire shape: a producer's typo is an error, not lost data."""


# --- field types -------------------------------------------------------------------------------
# Patterns end in \Z, not $: in Python `$` also matches before a final "\n", so "forum\n" would pass.

MAX_INT = 2**53 - 1  # I-JSON (RFC 7493): integers beyond this do not survive every JSON reader

ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*\Z"  # no Unicode Cc (control) character
CUSTOMER_PATTERN = r"^[^~]"  # "~" starts the anonymous profile keys of §3
CHANNEL_PATTERN = r"^[a-z0-9_]{1,32}\Z"
IDENTITY_CHANNEL_PATTERN = r"^[A-Za-z0-9_]{1,32}\Z"
CURRENCY_PATTERN = r"^[A-Z]{3}\Z"

EventId = Annotated[str, Meta(min_length=1, max_length=128, pattern=ID_PATTERN)]
Source = Annotated[str, Meta(min_length=1, max_length=64)]
Channel = Annotated[str, Meta(pattern=CHANNEL_PATTERN)]
Customer = Annotated[str, Meta(min_length=1, max_length=128, pattern=CUSTOMER_PATTERN)]
IdentityChannel = Annotated[str, Meta(pattern=IDENTITY_CHANNEL_PATTERN)]
Handle = Annotated[str, Meta(min_length=1, max_length=128)]
Key = Annotated[str, Meta(min_length=1)]  # an identifier: order, case, thread, idea, agent, url, ...
Text = str  # free text (text, title, subject, name, email, resolution, kind, locale): any string

Priority = Literal["low", "normal", "high", "urgent"]
Rung = Literal["inactive", "transactional", "participant", "contributor", "collaborator", "advocate"]
StatedLevel = Literal["transactional", "participant", "contributor", "collaborator", "advocate"]

RUNGS: tuple[Rung, ...] = typing.get_args(Rung)

# SPEC §1: personal data (§6), stored as ciphertext under the profile's key (§8).
PERSONAL_FIELDS = frozenset({"text", "title", "subject", "name", "email"})


class Identity(Strict, frozen=True):
    """A social identity. In a Touchpoint it is normalised (see parsing.normalise_identity)."""

    channel: IdentityChannel
    handle: Handle


# --- the catalogue's data, in SPEC §1 order ----------------------------------------------------


class CustomerRegistered(Strict, frozen=True):
    name: Text | UnsetType = UNSET
    email: Text | UnsetType = UNSET
    locale: Text | UnsetType = UNSET


class IdentityLinked(Strict, frozen=True):
    channel: IdentityChannel
    handle: Handle


class CustomerErased(Strict, frozen=True):
    pass


class PreferencesStated(Strict, frozen=True):
    level: StatedLevel | None  # required; null withdraws the stated level


class ConsentChanged(Strict, frozen=True):
    purpose: Literal["profiling", "marketing", "community_profile"]
    granted: bool


class PurchaseCompleted(Strict, frozen=True):
    order: Key
    amount_cents: Annotated[int, Meta(ge=0, le=MAX_INT)]
    currency: Annotated[str, Meta(pattern=CURRENCY_PATTERN)]


class CaseOpened(Strict, frozen=True):
    case: Key
    subject: Text | UnsetType = UNSET
    priority: Priority = "normal"


class CaseCustomerReplied(Strict, frozen=True):
    case: Key
    text: Text | UnsetType = UNSET


class ReactionAdded(Strict, frozen=True):
    target: Key
    kind: Text


class IdeaVoted(Strict, frozen=True):
    idea: Key


class SurveyAnswered(Strict, frozen=True):
    survey: Key
    # null is accepted on the wire and normalised to omitted: both mean "no score" (§4: null counts 0).
    nps: Annotated[int, Meta(ge=0, le=10)] | UnsetType | None = UNSET


class EventAttended(Strict, frozen=True):
    event: Key


class CaseRated(Strict, frozen=True):
    case: Key
    rating: Literal["good", "bad"]


class MentionObserved(Strict, frozen=True):
    url: Key | UnsetType = UNSET
    text: Text | UnsetType = UNSET


class PostPublished(Strict, frozen=True):
    thread: Key
    title: Text | UnsetType = UNSET
    text: Text | UnsetType = UNSET


class CommentPosted(Strict, frozen=True):
    thread: Key
    text: Text | UnsetType = UNSET


class QuestionAsked(Strict, frozen=True):
    question: Key
    text: Text | UnsetType = UNSET


class ReviewPosted(Strict, frozen=True):
    product: Key
    rating: Annotated[int, Meta(ge=1, le=5)]
    text: Text | UnsetType = UNSET


class IdeaSubmitted(Strict, frozen=True):
    idea: Key
    title: Text


class AnswerPosted(Strict, frozen=True):
    question: Key
    answer: Key
    text: Text | UnsetType = UNSET


class AnswerAccepted(Strict, frozen=True):
    question: Key
    answer: Key


class ContentShared(Strict, frozen=True):
    url: Key


class ReferralMade(Strict, frozen=True):
    referral: Key


class ReferralConverted(Strict, frozen=True):
    referral: Key


class IdeaStatusChanged(Strict, frozen=True):
    idea: Key
    status: Literal["under_review", "planned", "delivered", "declined"]


class CaseAssigned(Strict, frozen=True):
    case: Key
    agent: Key
    team: Key | UnsetType = UNSET


class CaseAgentReplied(Strict, frozen=True):
    case: Key
    agent: Key
    text: Text | UnsetType = UNSET


class CaseNoteAdded(Strict, frozen=True):
    case: Key
    agent: Key
    text: Text | UnsetType = UNSET


class CasePutOnHold(Strict, frozen=True):
    case: Key


class CaseEscalated(Strict, frozen=True):
    case: Key
    priority: Priority


class CaseSolved(Strict, frozen=True):
    case: Key
    resolution: Text | UnsetType = UNSET


class CaseReopened(Strict, frozen=True):
    case: Key


class CaseClosed(Strict, frozen=True):
    case: Key


class EventType(NamedTuple):
    name: str
    data: type[Strict]
    rung: Rung | None  # the rung it counts toward (§3), None for "-"
    requires_customer: bool
    case_event: bool


def _event(name: str, data: type[Strict], rung: Rung | None, *, requires_customer: bool = False) -> EventType:
    return EventType(name, data, rung, requires_customer, name.startswith("case."))


CATALOGUE: dict[str, EventType] = {
    e.name: e
    for e in (
        _event("customer.registered", CustomerRegistered, None),
        _event("identity.linked", IdentityLinked, None, requires_customer=True),
        _event("customer.erased", CustomerErased, None, requires_customer=True),
        _event("preferences.stated", PreferencesStated, None),
        _event("consent.changed", ConsentChanged, None),
        _event("purchase.completed", PurchaseCompleted, "transactional"),
        _event("case.opened", CaseOpened, "transactional"),
        _event("case.customer_replied", CaseCustomerReplied, "transactional"),
        _event("reaction.added", ReactionAdded, "participant"),
        _event("idea.voted", IdeaVoted, "participant"),
        _event("survey.answered", SurveyAnswered, "participant"),
        _event("event.attended", EventAttended, "participant"),
        _event("case.rated", CaseRated, "participant"),
        _event("mention.observed", MentionObserved, "contributor"),
        _event("post.published", PostPublished, "contributor"),
        _event("comment.posted", CommentPosted, "contributor"),
        _event("question.asked", QuestionAsked, "contributor"),
        _event("review.posted", ReviewPosted, "contributor"),
        _event("idea.submitted", IdeaSubmitted, "contributor"),
        _event("answer.posted", AnswerPosted, "collaborator"),
        _event("answer.accepted", AnswerAccepted, "collaborator"),
        _event("content.shared", ContentShared, "advocate"),
        _event("referral.made", ReferralMade, "advocate"),
        _event("referral.converted", ReferralConverted, "advocate"),
        _event("idea.status_changed", IdeaStatusChanged, None),
        _event("case.assigned", CaseAssigned, None),
        _event("case.agent_replied", CaseAgentReplied, None),
        _event("case.note_added", CaseNoteAdded, None),
        _event("case.put_on_hold", CasePutOnHold, None),
        _event("case.escalated", CaseEscalated, None),
        _event("case.solved", CaseSolved, None),
        _event("case.reopened", CaseReopened, None),
        _event("case.closed", CaseClosed, None),
    )
}


# --- the normalised event ----------------------------------------------------------------------

D = TypeVar("D", bound=Strict)


class Touchpoint(msgspec.Struct, Generic[D], frozen=True, kw_only=True):
    """A checked, normalised event: what the log holds and the rules read.

    `occurred_at` is in UTC, `identity` normalised, `data` always present (an omitted `data` is
    the type's empty Struct), `nps: null` omitted, `priority` filled in. Constructing one does not
    validate: only `parsing.parse` makes them from untrusted input.
    """

    id: str
    type: str
    occurred_at: datetime
    source: str
    channel: str
    customer: str | UnsetType = UNSET
    identity: Identity | UnsetType = UNSET
    data: D


_personal_fields_of: dict[type, tuple[str, ...]] = {}


def personal_fields(kind: type) -> tuple[str, ...]:
    """The personal fields (SPEC §1) a catalogue data type has."""
    names = _personal_fields_of.get(kind)
    if names is None:
        names = _personal_fields_of[kind] = tuple(
            name for name in getattr(kind, "__struct_fields__", ()) if name in PERSONAL_FIELDS)
    return names


def profile_key(tp: Touchpoint[Any]) -> str:
    """The profile the event carries (§3): the customer key, or the anonymous `~{channel}:{handle}`."""
    if isinstance(tp.customer, str):
        return tp.customer
    assert isinstance(tp.identity, Identity), "a Touchpoint has a customer or an identity"
    return f"~{tp.identity.channel}:{tp.identity.handle}"


def case_id(tp: Touchpoint[Any]) -> str | None:
    """The case a `case.*` event is about, else None."""
    return tp.data.case if CATALOGUE[tp.type].case_event else None


def to_wire(tp: Touchpoint[Any]) -> dict[str, Any]:
    """The normalised event as JSON-able builtins (the log's "event"): omitted fields stay omitted,
    defaults are filled, `occurred_at` is RFC 3339 UTC with `Z` and microseconds only when non-zero."""
    wire: dict[str, Any] = msgspec.to_builtins(tp)
    return wire


def from_wire(obj: dict[str, Any]) -> Touchpoint[Any]:
    """The inverse of `to_wire`, for events read back from the log. It trusts its input (no
    constraint is re-checked: a case-folded handle may be longer than the 128 characters sent)."""
    data_type = CATALOGUE[obj["type"]].data
    identity = obj.get("identity")
    return Touchpoint(
        id=obj["id"],
        type=obj["type"],
        occurred_at=datetime.fromisoformat(obj["occurred_at"]),
        source=obj["source"],
        channel=obj["channel"],
        customer=obj.get("customer", UNSET),
        identity=UNSET if identity is None else Identity(**identity),
        data=data_type(**obj.get("data", {})),
    )
