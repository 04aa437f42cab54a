"""Identity links and erasure as SPEC §3 and §6 say them: retroactive, latest wins, erasure ends them."""
from __future__ import annotations

from projections.directory import Directory, Link, customer_origin


def test_an_unlinked_identity_is_its_own_anonymous_profile() -> None:
    d = Directory()
    assert d.owner(d.identity_origin("twitter", "alice")) == "~twitter:alice"


def test_a_link_is_retroactive_and_the_anonymous_profile_is_gone() -> None:
    d = Directory()
    before = d.identity_origin("twitter", "alice")  # an event carried before the link
    assert d.link("twitter", "alice", Link("2026-10-02", "e-9", "c-42")) == ("~twitter:alice", "c-42")
    assert d.owner(before) == "c-42"
    assert d.origins_of("~twitter:alice") == []
    assert d.identities_of("c-42") == [("twitter", "alice")]


def test_the_latest_link_by_occurred_at_then_id_wins_whatever_the_log_order() -> None:
    d = Directory()
    d.link("twitter", "alice", Link("2026-10-05", "e-1", "c-new"))
    assert d.link("twitter", "alice", Link("2026-10-01", "e-2", "c-old")) is None  # older, arrived later
    assert d.owner(d.identity_origin("twitter", "alice")) == "c-new"
    # the same instant and a greater id: this one is the latest
    assert d.link("twitter", "alice", Link("2026-10-05", "e-2", "c-tie")) == ("c-new", "c-tie")
    assert d.identities_of("c-new") == [] and d.identities_of("c-tie") == [("twitter", "alice")]


def test_erasure_keeps_what_the_identity_carried_and_starts_it_afresh() -> None:
    d = Directory()
    old = d.identity_origin("twitter", "alice")
    d.link("twitter", "alice", Link("2026-10-01", "e-1", "c-42"))
    assert d.erase("c-42") == [("twitter", "alice")]
    assert d.owner(old) is None  # stays erased with the customer
    assert d.owner(customer_origin("c-42")) is None
    new = d.identity_origin("twitter", "alice")
    assert new.epoch == 1 and d.owner(new) == "~twitter:alice"
    assert d.origins_of("c-42") == []


def test_an_identity_relinked_elsewhere_is_not_ended_by_the_old_owners_erasure() -> None:
    d = Directory()
    d.link("twitter", "alice", Link("2026-10-01", "e-1", "c-old"))
    d.link("twitter", "alice", Link("2026-10-02", "e-2", "c-new"))
    assert d.erase("c-old") == []
    assert d.owner(d.identity_origin("twitter", "alice")) == "c-new"


def test_a_new_link_after_erasure_takes_only_the_new_epoch() -> None:
    d = Directory()
    old = d.identity_origin("twitter", "alice")
    d.link("twitter", "alice", Link("2026-10-01", "e-1", "c-42"))
    d.erase("c-42")
    d.link("twitter", "alice", Link("2026-09-01", "e-5", "c-7"))  # earlier instant, but a new epoch
    assert d.owner(d.identity_origin("twitter", "alice")) == "c-7"
    assert d.owner(old) is None
    assert d.identities_of("c-7") == [("twitter", "alice")]


def test_a_customer_profile_gathers_its_own_events_and_its_linked_identities() -> None:
    d = Directory()
    d.link("twitter", "bob", Link("2026-10-01", "e-1", "c-1"))
    d.link("forum", "bob", Link("2026-10-01", "e-2", "c-1"))
    assert [o.channel for o in d.origins_of("c-1")] == [None, "forum", "twitter"]
    assert d.identities_of("c-1") == [("forum", "bob"), ("twitter", "bob")]


def test_a_directory_rebuilt_from_its_tables_knows_who_is_linked() -> None:
    d = Directory()
    d.link("twitter", "bob", Link("2026-10-01", "e-1", "c-1"))
    again = Directory(epochs=dict(d.epochs), links=dict(d.links), erased=set(d.erased))
    assert again.identities_of("c-1") == [("twitter", "bob")]
