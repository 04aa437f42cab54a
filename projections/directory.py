"""Who each event belongs to (SPEC §3, §6): origins, identity links and erasure, applied in log order.

An event's *origin* is who sent it: a customer key, or an identity in its current *epoch*. Links are
retroactive within an epoch (the latest link, by (occurred_at, id), decides whose the identity's
events are, before and after it). Erasure of a customer ends the epoch of every identity linked to
it: what the identity carried until then stays with the erased customer; what it carries from then
on starts a new epoch, an anonymous profile until a new link.

Pure state: the runner persists it in its own tables and reloads it on start.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class Origin(NamedTuple):
    customer: str | None  # a customer origin ...
    channel: str | None  # ... or an identity origin in an epoch
    handle: str | None
    epoch: int


class Link(NamedTuple):
    occurred_at: str  # sortable instant
    event_id: str
    customer: str


def customer_origin(customer: str) -> Origin:
    return Origin(customer, None, None, 0)


def anonymous_key(channel: str, handle: str) -> str:
    return f"~{channel}:{handle}"


@dataclass
class Directory:
    epochs: dict[tuple[str, str], int] = field(default_factory=dict)
    links: dict[tuple[str, str, int], Link] = field(default_factory=dict)
    erased: set[str] = field(default_factory=set)
    linked_to: dict[str, set[tuple[str, str, int]]] = field(default_factory=dict)  # customer -> link keys

    def __post_init__(self) -> None:
        for key, link in self.links.items():
            self.linked_to.setdefault(link.customer, set()).add(key)

    def identity_origin(self, channel: str, handle: str) -> Origin:
        return Origin(None, channel, handle, self.epochs.get((channel, handle), 0))

    def owner(self, origin: Origin) -> str | None:
        """The profile key an origin's events belong to; None when that is an erased customer."""
        if origin.customer is not None:
            return None if origin.customer in self.erased else origin.customer
        assert origin.channel is not None and origin.handle is not None
        link = self.links.get((origin.channel, origin.handle, origin.epoch))
        if link is not None:
            return None if link.customer in self.erased else link.customer
        if origin.epoch != self.epochs.get((origin.channel, origin.handle), 0):
            return None  # an ended epoch without a link cannot happen; never resurrect it
        return anonymous_key(origin.channel, origin.handle)

    def link(self, channel: str, handle: str, new: Link) -> tuple[str | None, str] | None:
        """Apply an `identity.linked`; returns (owner before, owner after) when the owner changes."""
        origin = self.identity_origin(channel, handle)
        key = (channel, handle, origin.epoch)
        current = self.links.get(key)
        if current is not None and (current.occurred_at, current.event_id) >= (new.occurred_at, new.event_id):
            return None  # an older link arriving later: the latest one still wins
        before = self.owner(origin)
        if current is not None:
            self.linked_to[current.customer].discard(key)
        self.links[key] = new
        self.linked_to.setdefault(new.customer, set()).add(key)
        after = self.owner(origin)
        assert after is not None  # a link to an erased customer is rejected on the write side
        return None if before == after else (before, after)

    def erase(self, customer: str) -> list[tuple[str, str]]:
        """Apply a `customer.erased`; returns the identities whose epoch it ended."""
        self.erased.add(customer)
        ended = sorted((ch, h) for ch, h, epoch in self.linked_to.get(customer, ())
                       if epoch == self.epochs.get((ch, h), 0))
        for channel, handle in ended:
            self.epochs[(channel, handle)] = self.epochs.get((channel, handle), 0) + 1
        return ended

    def origins_of(self, profile: str) -> list[Origin]:
        """Every origin whose events belong to the profile."""
        if profile.startswith("~"):
            channel, _, handle = profile[1:].partition(":")
            origin = self.identity_origin(channel, handle)
            return [origin] if self.owner(origin) == profile else []
        if profile in self.erased:
            return []
        linked = [Origin(None, ch, h, epoch) for ch, h, epoch in sorted(self.linked_to.get(profile, ()))]
        return [customer_origin(profile), *linked]

    def identities_of(self, profile: str) -> list[tuple[str, str]]:
        """The normalised identities a profile shows (§7), sorted by channel then handle."""
        return sorted({(o.channel, o.handle) for o in self.origins_of(profile)
                       if o.channel is not None and o.handle is not None})
