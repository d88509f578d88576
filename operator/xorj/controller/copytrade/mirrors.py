"""Every CopyTrade's mirror (:func:`.reconcile.mirror_copytrade`), run by the operator itself: started
from the watch, at most ``slots`` of them admitting or taking their first look at once, the others
waiting their turn as a small copy of what their mirror needs.

Why not a kopf daemon per CopyTrade: kopf keeps a daemon's whole object body (managedFields
included, tens of KiB as Python objects), its task and its logger for the daemon's life, from the
first event on. A burst of 10,000 CopyTrades had 8,000 daemons waiting for a ledger connection at
once, and the operator peaked at 585 MiB. Here a CopyTrade waiting for its turn is a
:class:`MirrorJob` (its metadata, spec and status, under 2 KiB); one being mirrored is one task, once
admitted; a finished one is a uid in a set; a TTL is a timer handle.

What kopf did for a daemon, this does too: a CopyTrade whose deletion began is no longer mirrored
(its finalizer takes over), a failed mirror is run again after a back-off, and everything stops with
the operator. A peer that pauses this operator stops new mirrors (kopf stops delivering events) but
lets the running ones finish: they admit with the ledger's idempotency key and write the status the
ledger holds, so a second operator doing the same writes the same.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

from xorj.controller import metrics
from xorj.controller.copytrade import reconcile
from xorj.controller.runtime import Runtime

log = logging.getLogger(__name__)

# Back-off before a mirror that raised runs again (kopf's daemon back-off was the same).
ERROR_BACKOFF_SECONDS = 5.0


@dataclass(slots=True)
class MirrorJob:
    """A CopyTrade waiting for its mirror to run: what the mirror reads of its object, copied out of
    the watch's body so the body itself can go."""

    body: dict[str, Any]

    @classmethod
    def of(cls, body: Any) -> MirrorJob:
        meta = body["metadata"]
        return cls({
            "apiVersion": body.get("apiVersion"),
            "kind": body.get("kind"),
            "metadata": {key: copy.deepcopy(meta[key])
                         for key in ("namespace", "name", "uid", "generation", "creationTimestamp", "labels")
                         if key in meta},
            "spec": copy.deepcopy(dict(body.get("spec") or {})),
            "status": copy.deepcopy(dict(body.get("status") or {})),
        })

    @property
    def ref(self) -> str:
        meta = self.body["metadata"]
        return reconcile.copytrade_ref(meta["namespace"], meta["name"])


class _Slot:
    """One of the mirrors' admission slots, given back once (first look done, or the run ended)."""

    def __init__(self, mirrors: CopyTradeMirrors) -> None:
        self._mirrors: CopyTradeMirrors | None = mirrors

    def release(self) -> None:
        if self._mirrors is not None:
            mirrors, self._mirrors = self._mirrors, None
            mirrors.slot_released()


class CopyTradeMirrors:
    """The mirrors of one operator, by CopyTrade uid: waiting (queued, or retrying later), running,
    or finished (terminal and mirrored; with a TTL timer if it has one)."""

    def __init__(self, rt: Runtime, *, slots: int) -> None:
        self._rt = rt
        self._slots = slots
        self._busy = 0
        self._strategies: reconcile.StrategyLookup = reconcile._no_index
        self._waiting: dict[str, MirrorJob] = {}
        self._queue: deque[str] = deque()  # uids of waiting jobs whose turn may come now
        self._retry_timers: dict[str, asyncio.TimerHandle] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._finished: set[str] = set()
        self._ttl_timers: dict[str, asyncio.TimerHandle] = {}
        self._deletions: set[asyncio.Task[None]] = set()

    # -- from the watch ------------------------------------------------------------------------

    def seen(self, event_type: str | None, body: Any, strategies: reconcile.StrategyLookup) -> None:
        """The watch showed this CopyTrade (listed, added, modified or deleted)."""
        self._strategies = strategies
        meta = body["metadata"]
        uid = meta["uid"]
        if event_type == "DELETED":
            self.forget(uid)
        elif meta.get("deletionTimestamp"):
            self.stop(uid)
        elif uid in self._waiting:
            self._waiting[uid] = MirrorJob.of(body)  # its newest status (e.g. a condition already written)
        elif uid in self._finished:
            self._rt.freshness.settle(uid)  # the watch has shown a write of ours: forget what it showed
        elif uid not in self._running:
            self._waiting[uid] = MirrorJob.of(body)
            self._queue.append(uid)
            self._pump()
        self._export()

    def stop(self, uid: str) -> None:
        """The object's deletion began: no more mirroring (as kopf stopped a daemon then)."""
        job = self._waiting.pop(uid, None)
        if job is not None:
            self._finished.add(uid)  # not queued again by the events of its deletion
        timer = self._retry_timers.pop(uid, None)
        if timer is not None:
            timer.cancel()
        task = self._running.get(uid)
        if task is not None:
            task.cancel()
            self._finished.add(uid)

    def forget(self, uid: str) -> None:
        """The object is gone."""
        self.stop(uid)
        self._finished.discard(uid)
        timer = self._ttl_timers.pop(uid, None)
        if timer is not None:
            timer.cancel()
        self._rt.freshness.forget(uid)

    async def close(self) -> None:
        """The operator stops: cancel every mirror and timer."""
        for timer in (*self._retry_timers.values(), *self._ttl_timers.values()):
            timer.cancel()
        tasks = [*self._running.values(), *self._deletions]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- scheduling ----------------------------------------------------------------------------

    def slot_released(self) -> None:
        self._busy -= 1
        self._pump()

    def _pump(self) -> None:
        while self._busy < self._slots and self._queue:
            uid = self._queue.popleft()
            job = self._waiting.pop(uid, None)
            if job is None:
                continue  # stopped or forgotten while queued
            self._busy += 1
            self._running[uid] = asyncio.create_task(self._run(uid, job), name=f"mirror of CopyTrade {job.ref}")
        self._export()

    async def _run(self, uid: str, job: MirrorJob) -> None:
        slot = _Slot(self)
        logger = logging.LoggerAdapter(log, {"copytrade": job.ref})
        end: reconcile.MirrorEnd | None = None
        try:
            end = await reconcile.mirror_copytrade(self._rt, job.body, logger, self._strategies,
                                                   first_look_done=slot.release)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("CopyTrade mirror failed; running it again in %.0f s", ERROR_BACKOFF_SECONDS)
            end = reconcile.MirrorEnd(retry_in=ERROR_BACKOFF_SECONDS)
        finally:
            slot.release()
            if self._running.get(uid) is asyncio.current_task():
                del self._running[uid]
            self._export()
        if uid in self._finished:
            return  # stopped while it ran
        if end.retry_in is not None:
            self._waiting[uid] = job
            self._retry_timers[uid] = asyncio.get_running_loop().call_later(end.retry_in, self._retry, uid)
            return
        self._finished.add(uid)
        self._rt.freshness.settle(uid)
        if end.ttl_remaining is not None:
            meta = job.body["metadata"]
            self._ttl_timers[uid] = asyncio.get_running_loop().call_later(
                end.ttl_remaining, self._expire, uid, meta["namespace"], meta["name"])
        self._export()

    def _retry(self, uid: str) -> None:
        self._retry_timers.pop(uid, None)
        if uid in self._waiting:
            self._queue.append(uid)
            self._pump()

    def _expire(self, uid: str, namespace: str, name: str) -> None:
        self._ttl_timers.pop(uid, None)
        task = asyncio.create_task(reconcile.delete_after_ttl(self._rt, namespace, name, uid),
                                   name=f"TTL of CopyTrade {namespace}/{name}")
        self._deletions.add(task)

        def deleted(task: asyncio.Task[None]) -> None:
            self._deletions.discard(task)
            if task.cancelled() or task.exception() is None or uid not in self._finished:
                return
            log.warning("TTL deletion of CopyTrade %s/%s failed (%s); trying again in %.0f s", namespace, name,
                        type(task.exception()).__name__, ERROR_BACKOFF_SECONDS)
            self._ttl_timers[uid] = asyncio.get_running_loop().call_later(
                ERROR_BACKOFF_SECONDS, self._expire, uid, namespace, name)

        task.add_done_callback(deleted)

    def _export(self) -> None:
        metrics.COPYTRADE_MIRRORS.labels("waiting").set(len(self._waiting))
        metrics.COPYTRADE_MIRRORS.labels("running").set(len(self._running))
        metrics.COPYTRADE_MIRRORS.labels("finished").set(len(self._finished))
