"""Chaos sets: which experiments a ``xorj chaos run`` runs, and with how many trades each.

The experiment files are written at the ``ci`` size (their ``all-trades-terminal`` probe's
``min_trades`` is the trade count the method submits). A set with a trade target runs the same files
scaled: ``xorj chaos run`` passes each experiment a ``trade_scale`` (its configuration value, from
``XORJ_CHAOS_TRADE_SCALE``) = target / the file's own count, and the activities multiply by it what
grows with the load: the loads' and replays' counts and spreads (so trades arrive at ci's rate, for
longer), the fault windows held with :func:`xorj.chaos.actions.hold` and the price swings' span (so
the faults last as long, relative to the load, as in ci), and the probes' ``min_trades`` and time
limits. One-off events (kills, restarts, the ten hostile answers) happen as often as in ci.

Pure: no I/O; the experiment documents are passed in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from xorj.errors import InvalidInputError

TRADE_SCALE_KEY = "trade_scale"
TRADE_SCALE_ENV = "XORJ_CHAOS_TRADE_SCALE"
CLUSTER_TOO = "runs-on-cluster"  # a local experiment that also runs against `xorj dev up`
# needs the chart's HA ledger (ledger.mode=ha: `xorj dev up --ledger ha`); no other target runs it
HA_LEDGER = "ledger-ha"
TRADES_PROBE = "all-trades-terminal"  # its min_trades is the experiment's trade count as written


@dataclass(frozen=True)
class ChaosSet:
    """A named selection of experiments and the trades each must run with (None: as written)."""

    name: str
    description: str
    every_runnable: bool  # False: only the experiments tagged with ``name``
    min_trades: int | None = None


SETS: dict[str, ChaosSet] = {
    "ci": ChaosSet("ci", "the experiments tagged `ci`, as written (what `make test` runs)", every_runnable=False),
    "full": ChaosSet("full", "every experiment runnable on the target, at least 500 trades each",
                     every_runnable=True, min_trades=500),
}
DEFAULT_SET = "ci"


@dataclass(frozen=True)
class PlannedExperiment:
    name: str
    declared_trades: int  # the file's own count (min_trades of all-trades-terminal)
    trade_scale: float  # passed to the experiment as its `trade_scale` configuration value
    trades: int  # what the scaled run must submit (and its probe requires)


def get_set(name: str) -> ChaosSet:
    try:
        return SETS[name]
    except KeyError:
        raise InvalidInputError(f"--set: unknown chaos set {name!r}; known: {', '.join(SETS)}") from None


def is_runnable(tags: list[str], cluster_target: bool, ha_ledger: bool = False) -> bool:
    """Cluster experiments (tag ``cluster``) need a cluster target. On a cluster target the local
    ones run only if tagged ``runs-on-cluster``: the others need the local chaos env's executor
    processes or its TCP proxy. Those tagged ``ledger-ha`` need a cluster target whose ledger is the
    chart's HA ledger (``ha_ledger``)."""
    if HA_LEDGER in tags and not (cluster_target and ha_ledger):
        return False
    if cluster_target:
        return "cluster" in tags or CLUSTER_TOO in tags
    return "cluster" not in tags


def select(chaos_set: ChaosSet, experiments: Mapping[str, Mapping[str, Any]], cluster_target: bool,
           ha_ledger: bool = False) -> list[str]:
    """The names of ``experiments`` the set runs on this target, in name order. A set that is not
    `every_runnable` takes the experiments tagged with its name, plus, on a cluster target, the
    cluster ones (as ``xorj chaos run`` always did)."""
    chosen = []
    for name in sorted(experiments):
        tags = list(experiments[name].get("tags", []))
        if not is_runnable(tags, cluster_target, ha_ledger):
            continue
        if chaos_set.every_runnable or chaos_set.name in tags or ("cluster" in tags and cluster_target):
            chosen.append(name)
    return chosen


def needing_ha_ledger(experiments: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The experiments only a target with the HA ledger runs (what a run on another target leaves out)."""
    return sorted(name for name, doc in experiments.items() if HA_LEDGER in (doc.get("tags") or []))


def declared_trades(name: str, doc: Mapping[str, Any]) -> int:
    """The trades an experiment file submits as written: its hypothesis' ``all-trades-terminal``
    ``min_trades``."""
    for probe in (doc.get("steady-state-hypothesis") or {}).get("probes") or []:
        if probe.get("name") == TRADES_PROBE:
            value = ((probe.get("provider") or {}).get("arguments") or {}).get("min_trades")
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    raise InvalidInputError(f"experiment {name}: its {TRADES_PROBE!r} probe must declare min_trades > 0 "
                            "(the trade count a set scales from)")


def scaled(value: float, scale: float) -> int:
    """A count scaled up (never down below the count as written)."""
    return max(int(value), math.ceil(round(value * scale, 6)))


def plan(chaos_set: ChaosSet, names: list[str], experiments: Mapping[str, Mapping[str, Any]],
         trades: int | None = None) -> list[PlannedExperiment]:
    """Each experiment's scale for the set. ``trades`` overrides the set's target; a set with a
    minimum refuses a target (or an experiment whose scaled count) below it."""
    target = trades if trades is not None else chaos_set.min_trades
    if target is not None and target < 1:
        raise InvalidInputError(f"--trades must be at least 1, got {target}")
    if chaos_set.min_trades is not None and (target is None or target < chaos_set.min_trades):
        raise InvalidInputError(f"--trades: the {chaos_set.name} set runs at least {chaos_set.min_trades} trades "
                                f"per experiment, got {target}")
    out = []
    for name in names:
        if target is None:  # as written: an experiment that declares no count still runs
            try:
                declared = declared_trades(name, experiments[name])
            except InvalidInputError:
                declared = 0
            out.append(PlannedExperiment(name, declared, 1.0, declared))
            continue
        declared = declared_trades(name, experiments[name])
        scale = max(1.0, target / declared)
        planned = PlannedExperiment(name, declared, scale, scaled(declared, scale))
        if chaos_set.min_trades is not None and planned.trades < chaos_set.min_trades:
            raise InvalidInputError(f"experiment {name}: the {chaos_set.name} set needs at least "
                                    f"{chaos_set.min_trades} trades, this plan gives {planned.trades}")
        out.append(planned)
    return out


def parse_trade_scale(value: Any) -> float:
    """The ``trade_scale`` configuration value (a number >= 1; empty or absent: 1)."""
    if value in (None, ""):
        return 1.0
    try:
        scale = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"trade_scale ({TRADE_SCALE_ENV}) must be a number >= 1, got {value!r}") from None
    if not math.isfinite(scale) or scale < 1:
        raise InvalidInputError(f"trade_scale ({TRADE_SCALE_ENV}) must be a number >= 1, got {value!r}")
    return scale
