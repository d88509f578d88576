"""The watch-freshness tracker behind the liveness probe."""

from __future__ import annotations

from xorj.controller.freshness import WatchFreshness


def test_write_seen_back_in_time_is_fresh() -> None:
    f = WatchFreshness(stale_after=10)
    f.wrote("u1", "100", now=0)
    f.observed("u1", "100", now=1)
    assert f.stale(now=100) == []


def test_write_never_seen_goes_stale_after_threshold() -> None:
    f = WatchFreshness(stale_after=10)
    f.wrote("u1", "100", now=0)
    f.observed("u1", "99", now=1)  # an older version does not count
    assert f.stale(now=9) == []
    assert f.stale(now=11) == ["u1"]
    f.observed("u1", "105", now=12)  # a later version implies ours was applied
    assert f.stale(now=13) == []


def test_idle_operator_is_never_stale_and_races_are_handled() -> None:
    f = WatchFreshness(stale_after=10)
    assert f.stale(now=1000) == []
    f.observed("u2", "50", now=0)  # the watch was faster than the write's response
    f.wrote("u2", "50", now=1)
    assert f.stale(now=100) == []
    f.wrote("u3", "7", now=0)
    f.wrote("u3", "9", now=5)  # a second write keeps the first deadline
    assert f.stale(now=11) == ["u3"]
    f.forget("u3")
    assert f.stale(now=11) == []


def test_awaiting_until_the_watch_shows_our_last_write_and_settle_keeps_an_unseen_one() -> None:
    f = WatchFreshness(stale_after=10)

    def awaiting(uid: str) -> bool:  # an expectation of ours the watch has not met (stale long after)
        return uid in f.stale(now=1000)

    f.wrote("u4", "20", now=0)
    assert awaiting("u4")
    f.settle("u4")  # our write is still unseen: the probe keeps waiting for it
    assert awaiting("u4")
    f.observed("u4", "20", now=1)
    assert not awaiting("u4")
    f.settle("u4")
    f.wrote("u4", "20", now=2)  # nothing seen any more: the same version is expected again
    assert awaiting("u4")
