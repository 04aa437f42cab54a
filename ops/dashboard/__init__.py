"""The dashboard page (`GET /`) and the assets it needs, all served by the engine itself."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from engine.log import Log
from projections.reads import Reads


def dashboard_routes(log_: Log, reads: Reads | None, clock: Callable[[], datetime]) -> list[Any]:
    """Route handlers of the dashboard; none without read models."""
    return []
