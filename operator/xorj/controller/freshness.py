"""Watch freshness: does the watch stream still deliver what we know happened?

Every write the operator makes returns the object's new resourceVersion; the watch must deliver that
version soon after. An expectation unmet for longer than ``stale_after`` means the watch went silent
(kopf issues 585, 787, 955, 996), and the liveness probe fails so the pod is restarted. An operator that
writes nothing (idle, or paused by peering) has no expectations, so it is never wrongly declared dead.
Pure: the clock is a parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class WatchFreshness:
    stale_after: float
    _expected: dict[str, tuple[int, float]] = field(default_factory=dict)  # uid -> (rv, since)
    _seen: dict[str, int] = field(default_factory=dict)  # uid -> highest rv delivered by the watch

    def wrote(self, uid: str, resource_version: str | int | None, now: float) -> None:
        """We wrote ``uid`` and the API answered with ``resource_version``."""
        rv = _rv(resource_version)
        if rv is None or self._seen.get(uid, -1) >= rv:
            return
        if uid not in self._expected or self._expected[uid][0] < rv:
            since = self._expected[uid][1] if uid in self._expected else now
            self._expected[uid] = (rv, since)

    def observed(self, uid: str, resource_version: str | int | None, now: float) -> None:
        """The watch delivered ``uid`` at ``resource_version``."""
        rv = _rv(resource_version)
        if rv is None:
            return
        if rv > self._seen.get(uid, -1):
            self._seen[uid] = rv
        expected = self._expected.get(uid)
        if expected is not None and rv >= expected[0]:
            del self._expected[uid]

    def settle(self, uid: str) -> None:
        """Nothing more will be written to ``uid`` (a finished CopyTrade): forget what the watch showed of
        it, unless a write of ours is still unseen (that expectation stays until the watch shows it)."""
        if uid not in self._expected:
            self._seen.pop(uid, None)

    def forget(self, uid: str) -> None:
        self._expected.pop(uid, None)
        self._seen.pop(uid, None)

    def stale(self, now: float) -> list[str]:
        """uids whose write the watch has not delivered within ``stale_after`` seconds."""
        return [uid for uid, (_, since) in self._expected.items() if now - since > self.stale_after]


def _rv(value: str | int | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None  # resourceVersions are opaque in theory; etcd's are integers in practice
