"""Who follows whom: the table the watcher consults for every signal, built off the hot path.

:func:`follow_table` is the one rule (pure): for every TradingStrategy, the leaders it follows
(explicit ``spec.traders``, or ``spec.topN`` of the ledger's scores or of a TraderPool's ranking,
through :func:`xorj.controller.tradingstrategy.status.followed_traders`, the same selection admission and the
strategy's status use), its vault and its :class:`~xorj.domain.copy_signals.CopyPolicy`.

Two books feed it: :class:`KubeFollowBook` (the Kubernetes API: TradingStrategies and TraderPools of
the watched namespaces, or of every namespace, re-listed on every change a watch reports and every
``refresh_seconds``, never per signal) and :class:`StaticFollowBook`
(the same objects from a YAML file, for running without a cluster). Both answer
:meth:`FollowBook.followers_of` from memory.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import ValidationError

from xorj.controller.models import (
    GROUP,
    VERSION,
    RankedTrader,
    TraderPool,
    TradingStrategySpec,
)
from xorj.controller.tradingstrategy.status import followed_traders
from xorj.domain.copy_signals import CopyMode, CopyPolicy
from xorj.domain.trader_history import DEFAULT_CASH_MINTS, SOL_MINT
from xorj.errors import InvalidInputError
from xorj.ledger.records import StoredTraderScore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Follower:
    """One strategy following a leader."""

    namespace: str
    name: str
    vault: str
    policy: CopyPolicy
    max_slippage_bps: int | None = None

    @property
    def strategy_key(self) -> str:
        return f"{self.namespace}/{self.name}"  # the ledger's strategy key (xorj.controller.common.strategy_key)


def _dec(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def policy_from_spec(spec: TradingStrategySpec, cash_mints: frozenset[str]) -> CopyPolicy:
    """The strategy's ``spec.sizing``, ``spec.filters`` and ``spec.paused`` as a domain policy."""
    sizing, filters = spec.sizing, spec.filters
    return CopyPolicy(
        mode=CopyMode(sizing.mode.value), ratio=Decimal(str(sizing.ratio)), fixed_amount=sizing.fixed_amount,
        fixed_usd=_dec(sizing.fixed_usd), vault_percent=_dec(sizing.vault_percent), min_usd=_dec(sizing.min_usd),
        max_usd=_dec(sizing.max_usd), min_notional_usd=Decimal(str(filters.min_notional_usd)),
        allow_mints=None if filters.allow_mints is None else frozenset(filters.allow_mints),
        deny_mints=frozenset(filters.deny_mints or ()), max_signal_age_seconds=filters.max_signal_age_seconds,
        cash_mints=cash_mints, paused=spec.paused)


@dataclass(frozen=True)
class StrategyObject:
    namespace: str
    name: str
    spec: TradingStrategySpec


def follow_table(strategies: Iterable[StrategyObject], pools: Mapping[tuple[str, str], Sequence[RankedTrader]],
                 scores: Sequence[StoredTraderScore], *, cash_mints: frozenset[str]) -> dict[str, list[Follower]]:
    """leader -> the strategies following it (see the module doc). ``pools``: (namespace, pool name)
    -> its ranking; a pool missing there ranks nobody yet."""
    table: dict[str, list[Follower]] = {}
    for strategy in strategies:
        spec = strategy.spec
        pool = spec.top_n.pool if spec.top_n is not None else None
        ranks = pools.get((strategy.namespace, pool)) if pool else None
        follower = Follower(strategy.namespace, strategy.name, spec.vault.public_key,
                            policy_from_spec(spec, cash_mints))
        for trader in followed_traders(spec, scores, ranks):
            table.setdefault(trader.wallet, []).append(follower)
    return table


class FollowBook(Protocol):
    def followers_of(self, leader: str) -> list[Follower]: ...

    def leaders(self) -> frozenset[str]: ...


class _TableBook:
    def __init__(self) -> None:
        self._table: dict[str, list[Follower]] = {}

    def followers_of(self, leader: str) -> list[Follower]:
        return list(self._table.get(leader, ()))

    def leaders(self) -> frozenset[str]:
        return frozenset(self._table)

    def replace(self, table: dict[str, list[Follower]]) -> None:
        self._table = table


def parse_objects(docs: Iterable[Mapping[str, Any]]) -> tuple[list[StrategyObject], dict[tuple[str, str],
                                                                                        list[RankedTrader]]]:
    """TradingStrategy and TraderPool objects (as the API server returns them) -> strategies and pool
    rankings. A strategy whose spec does not validate is left out with a warning (the operator reports
    it on the object): one bad object must not stop every other strategy's copying."""
    strategies: list[StrategyObject] = []
    pools: dict[tuple[str, str], list[RankedTrader]] = {}
    for doc in docs:
        meta = doc.get("metadata") or {}
        namespace, name = meta.get("namespace", "default"), meta.get("name", "")
        try:
            if doc.get("kind") == "TradingStrategy":
                strategies.append(StrategyObject(namespace, name, TradingStrategySpec.model_validate(doc["spec"])))
            elif doc.get("kind") == "TraderPool":
                pool = TraderPool.model_validate({**doc, "metadata": meta})
                if pool.status is not None:
                    pools[(namespace, name)] = list(pool.status.ranks)
        except (ValidationError, KeyError) as exc:
            log.warning("object left out of the follow table", extra={"kind": doc.get("kind"),
                                                                      "object": f"{namespace}/{name}",
                                                                      "error": str(exc)[:300]})
    return strategies, pools


class StaticFollowBook(_TableBook):
    """The follow table of TradingStrategy/TraderPool objects in a YAML file (no cluster)."""

    def __init__(self, docs: Iterable[Mapping[str, Any]], scores: Sequence[StoredTraderScore] = (), *,
                 cash_mints: frozenset[str] = DEFAULT_CASH_MINTS | {SOL_MINT}) -> None:
        super().__init__()
        strategies, pools = parse_objects(docs)
        self.replace(follow_table(strategies, pools, scores, cash_mints=cash_mints))

    @classmethod
    def from_file(cls, path: Path, scores: Sequence[StoredTraderScore] = (), *,
                  cash_mints: frozenset[str] = DEFAULT_CASH_MINTS | {SOL_MINT}) -> StaticFollowBook:
        try:
            docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        except (OSError, yaml.YAMLError) as exc:
            raise InvalidInputError(f"--strategies-file {path}: {exc}") from None
        return cls(docs, scores, cash_mints=cash_mints)


class KubeFollowBook(_TableBook):
    """The follow table from the Kubernetes API: TradingStrategies and TraderPools of the watched
    namespaces (or of every namespace) and the ledger's scores.

    :meth:`run` re-lists them within ``debounce_seconds`` of any change the API server reports on a
    watch of either kind (a strategy applied, edited or deleted, a pool's ranking rewritten), and
    every ``refresh_seconds`` whatever happens: the fallback when a watch is down or missed an event.
    A burst of changes is one re-list."""

    def __init__(self, api: Any, scores: Callable[[], Awaitable[Sequence[StoredTraderScore]]], *,
                 refresh_seconds: float = 10.0, namespaces: Sequence[str] = (),
                 cash_mints: frozenset[str] = DEFAULT_CASH_MINTS | {SOL_MINT}, debounce_seconds: float = 0.2,
                 watch_timeout_seconds: int = 300) -> None:
        super().__init__()
        self.api = api  # kubernetes.client.CustomObjectsApi
        self.namespaces = list(namespaces)  # empty: every namespace (a ClusterRole); else a Role in each
        self.scores = scores  # async () -> Sequence[StoredTraderScore]
        self.refresh_seconds = refresh_seconds
        self.cash_mints = cash_mints
        self.debounce_seconds = debounce_seconds
        self.watch_timeout_seconds = watch_timeout_seconds
        self.refreshed = asyncio.Event()
        self.refreshes = 0  # re-lists done (tests)
        self._changed = asyncio.Event()
        self._stopping = threading.Event()

    def _listers(self) -> list[tuple[str, Callable[..., Any], tuple[Any, ...]]]:
        """(plural, list function, its leading arguments) for each list the table is built from."""
        out: list[tuple[str, Callable[..., Any], tuple[Any, ...]]] = []
        for plural in ("tradingstrategies", "traderpools"):
            if self.namespaces:
                out += [(plural, self.api.list_namespaced_custom_object, (GROUP, VERSION, ns, plural))
                        for ns in self.namespaces]
            else:
                out.append((plural, self.api.list_cluster_custom_object, (GROUP, VERSION, plural)))
        return out

    def _list_objects(self) -> list[Mapping[str, Any]]:
        docs: list[Mapping[str, Any]] = []
        kinds = {"tradingstrategies": "TradingStrategy", "traderpools": "TraderPool"}
        for plural, lister, args in self._listers():
            docs += [{**item, "kind": kinds[plural]} for item in lister(*args).get("items", [])]
        return docs

    async def refresh_now(self) -> None:
        # the Kubernetes client is blocking: its lists go to a worker thread; the scores are read on
        # the event loop (the asyncio ledger)
        strategies, pools = parse_objects(await asyncio.to_thread(self._list_objects))
        scores = await self.scores() if any(s.spec.traders is None for s in strategies) else []
        self.replace(follow_table(strategies, pools, scores, cash_mints=self.cash_mints))
        self.refreshes += 1

    def _watch(self, lister: Callable[..., Any], args: tuple[Any, ...], changed: Callable[[], None]) -> None:
        """One kind's watch (a thread): every event the API server sends wakes :meth:`run`. Reconnects
        after a failure or the server's timeout; the first events of each connection (the objects as
        they are) wake it too, so nothing changed in between is missed."""
        from kubernetes import watch

        backoff = 0.5
        while not self._stopping.is_set():
            try:
                stream = watch.Watch().stream(lister, *args, timeout_seconds=self.watch_timeout_seconds)
                for _ in stream:
                    changed()
                    backoff = 0.5
                    if self._stopping.is_set():
                        return
            except Exception as exc:  # RBAC without watch, the API server away: the periodic re-list serves
                log.warning("follow table watch failed; retrying",
                            extra={"error": f"{type(exc).__name__}: {exc}"[:300], "retry_in": backoff})
                self._stopping.wait(backoff)
                backoff = min(30.0, backoff * 2)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()

        def changed() -> None:
            loop.call_soon_threadsafe(self._changed.set)

        for _, lister, args in self._listers():
            threading.Thread(target=self._watch, args=(lister, args, changed), daemon=True,
                             name=f"follow-watch-{args[-1]}").start()
        try:
            while True:
                self._changed.clear()
                try:
                    await self.refresh_now()
                    self.refreshed.set()
                except Exception as exc:  # the API server or the ledger away: keep the last table, retry
                    log.warning("follow table not refreshed",
                                extra={"error": f"{type(exc).__name__}: {exc}"[:300]})
                try:
                    await asyncio.wait_for(self._changed.wait(), self.refresh_seconds)
                    await asyncio.sleep(self.debounce_seconds)  # a burst of changes: one re-list
                except TimeoutError:
                    pass
        finally:
            self._stopping.set()
