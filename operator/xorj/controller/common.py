"""What the kinds' reconcilers share: the resources' plural names, the clock, the ledger's strategy key,
reading a status back, spec validation messages and the Events of condition changes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from xorj.controller.models import Condition, RankedTrader, TraderPoolStatus
from xorj.controller.runtime import Runtime
from xorj.controller.tradingstrategy.status import PAUSED

STRATEGIES = "tradingstrategies"
COPYTRADES = "copytrades"
POOLS = "traderpools"


def runtime_of(memo: kopf.Memo) -> Runtime:
    """The operator's runtime, which startup put in kopf's memo."""
    return memo["runtime"]


def now() -> datetime:
    return datetime.now(UTC)


def strategy_key(namespace: str, name: str) -> str:
    """The ledger's strategy column: namespaced, so equal names in two namespaces never mix."""
    return f"{namespace}/{name}"


def validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"spec.{where}: {err['msg']}" if where else err["msg"])
    return "; ".join(parts)


def status_model(model: type, raw: Any) -> Any:
    try:
        return model.model_validate(dict(raw or {}))
    except ValidationError:
        return None  # unreadable (e.g. written by an older version): recomputed from scratch


def condition_events(body: Any, before: list[Condition], after: list[Condition]) -> None:
    """An Event for each condition whose status changed (the transitions a person cares about)."""
    old = {c.type: c.status for c in before}
    for cond in after:
        if old.get(cond.type) != cond.status and (cond.type in old or cond.status.value == "True"):
            warn = (cond.type != PAUSED) and cond.status.value != "True"
            kopf.event(
                body,
                type="Warning" if warn else "Normal",
                reason=f"{cond.type}{cond.status.value}",
                message=cond.message,
            )


async def ranks_of_pool(rt: Runtime, namespace: str, pool: str | None) -> list[RankedTrader] | None:
    """The ranking of TraderPool ``pool`` (its status.ranks); None when no pool is named, when it does
    not exist, or when it has no readable ranking yet."""
    if pool is None:
        return None
    obj = await rt.kube.get_cr(namespace, POOLS, pool)
    status = status_model(TraderPoolStatus, (obj or {}).get("status")) if obj is not None else None
    return list(status.ranks) if status is not None and status.last_scored is not None else None
