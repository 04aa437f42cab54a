"""The words the read side answers with and filters by (SPEC §3–§5, §7), each list taken from the
type that defines it, in that type's order: the API's filters, its OpenAPI document and the
dashboard read them here, so none of them can drift from the folds."""
from __future__ import annotations

from typing import get_args

from commands.cases import ACTIVE, State
from commands.touchpoints import Priority
from projections.advocacy import Tier
from projections.engagement import LADDER

WITHHELD = "withheld"  # what a level or a tier reads without the analytics consent (SPEC §3)

LEVELS: tuple[str, ...] = (*LADDER, WITHHELD)
TIERS: tuple[str, ...] = (*get_args(Tier), WITHHELD)
STATES: tuple[State, ...] = get_args(State)
OPEN_STATES: tuple[State, ...] = tuple(state for state in STATES if state in ACTIVE)
PRIORITIES: tuple[Priority, ...] = get_args(Priority)
