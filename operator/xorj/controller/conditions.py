"""Status conditions as every kind writes them. Pure: no I/O; the clock is a parameter.

Conditions follow the Kubernetes convention: ``lastTransitionTime`` changes only when ``status``
changes, so a resync that finds nothing new writes an identical status (and the handler skips the
PATCH entirely). The kinds' status builders live beside their reconcilers:
:mod:`xorj.controller.tradingstrategy.status`, :mod:`xorj.controller.copytrade.status` and
:mod:`xorj.controller.traderpool.status`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from xorj.controller.models import Condition, ConditionStatus


def condition_status(value: bool) -> ConditionStatus:
    return ConditionStatus.TRUE if value else ConditionStatus.FALSE


def set_condition(
    previous: Sequence[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    *,
    now: datetime,
    generation: int | None,
) -> Condition:
    """The new condition, keeping the old lastTransitionTime when its status did not change."""
    old = next((c for c in previous if c.type == type_), None)
    since = old.last_transition_time if old is not None and old.status == status else now
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )
