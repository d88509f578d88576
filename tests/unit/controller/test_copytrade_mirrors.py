"""The scheduling of CopyTrade mirrors (xorj.controller.copytrade.mirrors): a bounded number admit at
once, the rest wait as small jobs; retries, deletion, finishing and TTLs. The mirror itself (ledger and
API server) is replaced by a scripted coroutine here; tests/e2e/operator runs the real one."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from xorj.controller.copytrade import mirrors as mirrors_module
from xorj.controller.copytrade.mirrors import CopyTradeMirrors, MirrorJob
from xorj.controller.copytrade.reconcile import MirrorEnd
from xorj.controller.freshness import WatchFreshness


def body(uid: str, *, status: dict[str, Any] | None = None, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": "ns", "name": f"ct-{uid}", "uid": uid, "generation": 1,
                            "creationTimestamp": "2026-12-02T00:00:00Z", "labels": {"a": "b"},
                            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-02T00:01:00Z"
    return {"apiVersion": "trading.xorj.io/v1alpha1", "kind": "CopyTrade", "metadata": meta,
            "spec": {"strategy": "s", "amount": 5}, "status": status or {}}


class Script:
    """Stands in for reconcile.mirror_copytrade: each run waits until the test lets it finish, and
    records what it was given."""

    def __init__(self) -> None:
        self.runs: list[dict[str, Any]] = []
        self.admitting = 0
        self.most_admitting = 0
        self.ends: dict[str, list[MirrorEnd | Exception]] = {}
        self.gates: dict[str, asyncio.Event] = {}

    async def __call__(self, rt: Any, body: dict[str, Any], logger: Any, strategies: Any, *,
                       first_look_done: Any) -> MirrorEnd:
        uid = body["metadata"]["uid"]
        self.runs.append(body)
        self.admitting += 1
        self.most_admitting = max(self.most_admitting, self.admitting)
        try:
            await self.gates.setdefault(uid, asyncio.Event()).wait()
        finally:
            self.admitting -= 1
        first_look_done()
        planned = self.ends.get(uid) or [MirrorEnd()]
        end = planned.pop(0) if len(planned) > 1 else planned[0]
        if isinstance(end, Exception):
            raise end
        return end


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> Script:
    s = Script()
    monkeypatch.setattr(mirrors_module.reconcile, "mirror_copytrade", s)
    return s


def runtime() -> Any:
    return SimpleNamespace(freshness=WatchFreshness(stale_after=10))


def no_strategies(namespace: str, name: str) -> None:
    return None


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_job_keeps_what_the_mirror_reads_and_not_the_rest_of_the_body() -> None:
    job = MirrorJob.of(body("u1", status={"tradeId": "7"}))
    assert set(job.body["metadata"]) == {"namespace", "name", "uid", "generation", "creationTimestamp", "labels"}
    assert job.body["spec"] == {"strategy": "s", "amount": 5} and job.body["status"] == {"tradeId": "7"}
    assert job.ref == "ns/ct-u1"


async def test_at_most_the_slots_admit_at_once_and_every_copytrade_is_mirrored_once(script: Script) -> None:
    mirrors = CopyTradeMirrors(runtime(), slots=2)
    for i in range(5):
        mirrors.seen(None, body(f"u{i}"), no_strategies)
        mirrors.seen("MODIFIED", body(f"u{i}"), no_strategies)  # a second event queues nothing more
    await settle()
    assert script.admitting == 2
    for i in range(5):
        script.gates.setdefault(f"u{i}", asyncio.Event()).set()
    for _ in range(20):
        await settle()
    assert sorted(r["metadata"]["uid"] for r in script.runs) == [f"u{i}" for i in range(5)]
    assert script.most_admitting == 2
    mirrors.seen("MODIFIED", body("u3"), no_strategies)  # finished: the echo of its last write
    await settle()
    assert len(script.runs) == 5
    await mirrors.close()


async def test_a_copytrade_not_admitted_runs_again_with_its_newest_body(script: Script) -> None:
    mirrors = CopyTradeMirrors(runtime(), slots=1)
    script.ends["u1"] = [MirrorEnd(retry_in=0.05), MirrorEnd()]
    script.gates["u1"] = asyncio.Event()
    script.gates["u1"].set()
    mirrors.seen(None, body("u1"), no_strategies)
    await settle()
    assert len(script.runs) == 1
    # while it waits to retry, the watch shows the condition its first run wrote
    mirrors.seen("MODIFIED", body("u1", status={"conditions": [{"type": "Admitted"}]}), no_strategies)
    await asyncio.sleep(0.1)
    await settle()
    assert len(script.runs) == 2
    assert script.runs[1]["status"] == {"conditions": [{"type": "Admitted"}]}
    await mirrors.close()


async def test_a_failed_mirror_runs_again_after_the_back_off(script: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mirrors_module, "ERROR_BACKOFF_SECONDS", 0.05)
    mirrors = CopyTradeMirrors(runtime(), slots=1)
    script.ends["u1"] = [RuntimeError("boom"), MirrorEnd()]
    script.gates["u1"] = asyncio.Event()
    script.gates["u1"].set()
    mirrors.seen(None, body("u1"), no_strategies)
    await asyncio.sleep(0.01)
    assert len(script.runs) == 1
    await asyncio.sleep(0.15)
    assert [r["metadata"]["uid"] for r in script.runs] == ["u1", "u1"]
    await mirrors.close()


async def test_deletion_stops_the_mirror_and_its_events_start_none(script: Script) -> None:
    mirrors = CopyTradeMirrors(runtime(), slots=1)
    mirrors.seen(None, body("u1"), no_strategies)
    mirrors.seen(None, body("u2"), no_strategies)  # waiting for the slot
    await settle()
    mirrors.seen("MODIFIED", body("u1", deleting=True), no_strategies)
    mirrors.seen("MODIFIED", body("u2", deleting=True), no_strategies)
    await settle()
    assert script.admitting == 0  # u1 cancelled; u2 never started
    assert [r["metadata"]["uid"] for r in script.runs] == ["u1"]
    mirrors.seen("MODIFIED", body("u2", deleting=True), no_strategies)
    await settle()
    assert len(script.runs) == 1
    mirrors.seen("DELETED", body("u1", deleting=True), no_strategies)
    mirrors.seen("DELETED", body("u2", deleting=True), no_strategies)
    await mirrors.close()


async def test_a_finished_copytrade_with_a_ttl_is_deleted_when_it_runs_out(
        script: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    deletions: list[tuple[str, str, str]] = []
    failures = [RuntimeError("API server unavailable")]

    async def delete_after_ttl(rt: Any, namespace: str, name: str, uid: str) -> None:
        deletions.append((namespace, name, uid))
        if failures:
            raise failures.pop()

    monkeypatch.setattr(mirrors_module.reconcile, "delete_after_ttl", delete_after_ttl)
    monkeypatch.setattr(mirrors_module, "ERROR_BACKOFF_SECONDS", 0.05)
    mirrors = CopyTradeMirrors(runtime(), slots=1)
    script.ends["u1"] = [MirrorEnd(ttl_remaining=0.05)]
    script.gates["u1"] = asyncio.Event()
    script.gates["u1"].set()
    mirrors.seen(None, body("u1"), no_strategies)
    await settle()
    assert deletions == []
    await asyncio.sleep(0.2)
    # the first deletion failed; it was tried again
    assert deletions == [("ns", "ct-u1", "u1"), ("ns", "ct-u1", "u1")]
    await mirrors.close()


async def test_close_cancels_every_mirror(script: Script) -> None:
    mirrors = CopyTradeMirrors(runtime(), slots=3)
    for i in range(3):
        mirrors.seen(None, body(f"u{i}"), no_strategies)
    await settle()
    assert script.admitting == 3
    await mirrors.close()
    assert script.admitting == 0
