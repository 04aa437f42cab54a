"""The decisions of SPEC §2 after parsing: idempotency, erasure, then the case rules of §5.

`decide` says whether; the log applies what follows. The view is whatever the write side knows
(the log's own tables inside the open transaction), so the same rule serves live ingest and tests.
"""
from __future__ import annotations

from typing import Any, Protocol

from commands import cases
from commands.cases import Case
from commands.outcomes import Duplicate, Rejected
from commands.parsing import impersonal_digest, is_impersonal
from commands.touchpoints import Touchpoint, case_id


class WriteView(Protocol):
    """What a decision needs to know about the log so far."""

    def logged(self, event_id: str) -> tuple[bytes, int] | None:
        """(content digest, position) of the event with that id, if the log holds it. Once the
        keys of the event's personal fields are destroyed (SPEC §6) the digest is its
        `impersonal_digest` (empty in a log that shredded digests before it kept those)."""

    def case(self, case: str) -> Case | None: ...

    def is_erased(self, customer: str) -> bool: ...


def decide(tp: Touchpoint[Any], digest: bytes, view: WriteView) -> Duplicate | Rejected | None:
    """None means accept. Checked in the order of SPEC §2."""
    seen = view.logged(tp.id)
    if seen is not None:
        logged_digest, position = seen
        # An erased customer's event is compared without its personal fields (answering by them
        # would confirm a guess); a log that shredded digests before that keeps none (b"").
        if is_impersonal(logged_digest):
            digest = impersonal_digest(tp)
        if logged_digest == digest or not logged_digest:
            return Duplicate(position)
        return Rejected(
            "duplicate_conflict", f"id: {tp.id!r} is in the log (position {position}) with other content"
        )
    customer = tp.customer if isinstance(tp.customer, str) else None
    if customer is not None and view.is_erased(customer):
        return Rejected("erased", f"customer: {customer!r} has been erased")
    case = case_id(tp)
    if case is not None:
        return cases.decide(view.case(case), tp)
    return None


def erased_customer(tp: Touchpoint[Any]) -> str | None:
    return tp.customer if tp.type == "customer.erased" and isinstance(tp.customer, str) else None
