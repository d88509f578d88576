"""TraderPool on a real API server: bad pools refused naming the field (OpenAPI + CEL); the operator
ranks pools from the swaps stored in a real Postgres ledger, on create and on its schedule."""

from __future__ import annotations

import time
from typing import Any

import pytest
from solders.keypair import Keypair

from tests.polling import wait_for
from tests.unit.controller.factories import PUBKEY_A, PUBKEY_B, PUBKEY_C, VAULT
from tests.unit.controller.histories import DAY, reckless, round_trips, steady
from xorj.ledger.trader_swaps import TraderCursor, TraderSwapStore

from .conftest import Kubectl
from .manifests import strategy

pytestmark = pytest.mark.cluster


def pool(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "trading.xorj.io/v1alpha1", "kind": "TraderPool", "metadata": {"name": name},
            "spec": spec}


@pytest.mark.parametrize(
    ("spec", "needles"),
    [
        ({}, ["set exactly one of spec.wallets (listed wallets) or spec.walletConfigMaps"]),
        ({"wallets": [PUBKEY_A], "walletConfigMaps": {"matchLabels": {"a": "b"}}},
         ["set exactly one of spec.wallets"]),
        ({"wallets": ["not-base58-0OIl"]}, ["spec.wallets[0]", "should match"]),
        ({"wallets": [PUBKEY_A, PUBKEY_B, PUBKEY_A]}, ["spec.wallets[2]", "Duplicate value"]),
        ({"wallets": [PUBKEY_A], "window": {"days": 0}}, ["spec.window.days"]),
        ({"wallets": [PUBKEY_A], "window": {"endsAt": "Yesterday"}}, ["spec.window.endsAt", "Unsupported value"]),
        ({"wallets": [PUBKEY_A], "normalization": "zscore"}, ["spec.normalization"]),
        ({"walletConfigMaps": {"matchLabels": {}}}, ["spec.walletConfigMaps.matchLabels"]),
    ],
)
def test_bad_pool_refused(kube: Kubectl, spec: dict, needles: list[str]) -> None:
    result = kube.apply(pool("bad", **spec), check=False)
    assert result.returncode != 0, "the API server accepted a bad TraderPool"
    for needle in needles:
        assert needle in result.stderr, result.stderr
    assert kube.get("traderpool", "bad") is None


def test_good_pool_is_stored_with_defaults(kube: Kubectl) -> None:
    kube.apply(pool("main", wallets=[PUBKEY_A, PUBKEY_B]))
    stored = kube.get("traderpool", "main")
    assert stored is not None
    assert stored["spec"]["window"] == {"days": 90, "endsAt": "Now"}
    assert stored["spec"]["normalization"] == "fixed"


# -- scoring: the operator ranks pools from the swaps stored in a real Postgres ledger ------------------

NOW = int(time.time())


def _record(ledger: Any, wallet: str, swaps: list) -> None:
    TraderSwapStore(ledger).record(wallet, swaps, None)


def test_pool_is_scored_from_stored_swaps_and_rescored_on_schedule(kube: Kubectl, operators, ledger) -> None:
    _record(ledger, PUBKEY_A, round_trips(PUBKEY_A, steady(), first=NOW - 119 * DAY, last=NOW - DAY))
    _record(ledger, PUBKEY_B, round_trips(PUBKEY_B, reckless(), first=NOW - 119 * DAY, last=NOW - DAY))
    _record(ledger, VAULT, round_trips(VAULT, steady(10), first=NOW - 20 * DAY, last=NOW - DAY))
    operators(extra_env={"XORJ_OPERATOR_POOL_SCORE_SECONDS": "2"})
    kube.apply(pool("leaders", wallets=[PUBKEY_A, PUBKEY_B, VAULT], ranksShown=2))

    status = wait_for(lambda: ((kube.get("traderpool", "leaders") or {}).get("status") or {}).get("lastScored")
                      and kube.get("traderpool", "leaders")["status"], 60, "the pool scored")
    assert [r["wallet"] for r in status["ranks"]] == [PUBKEY_A, PUBKEY_B]  # ranksShown 2 of 3
    assert status["ranks"][0]["status"] == "ELIGIBLE" and status["ranks"][0]["score"] > status["ranks"][1]["score"]
    assert (status["candidates"], status["eligible"], status["ineligible"]) == (3, 2, 1)
    assert status["topTrader"] == PUBKEY_A
    scores = {s.wallet: s for s in ledger.list_trader_scores()}
    assert scores[PUBKEY_A].status == "ELIGIBLE" and scores[PUBKEY_A].rank == 1
    assert scores[VAULT].status == "INSUFFICIENT_HISTORY"

    table = kube.run("get", "traderpools").stdout.splitlines()
    assert table[0].split() == ["NAME", "CANDIDATES", "ELIGIBLE", "INELIGIBLE", "TOP", "SCORE", "SCORED", "AGE"]
    row = table[1].split()
    assert row[:5] == ["leaders", "3", "2", "1", PUBKEY_A]
    assert float(row[5]) == status["topScore"]

    # a topN strategy names the pool: it follows the pool's rank 1
    follower = strategy("topn", topN={"count": 1, "pool": "leaders"})
    del follower["spec"]["traders"]
    kube.apply(follower)

    def followed() -> list[str] | None:
        st = (kube.get("ts", "topn") or {}).get("status") or {}
        return [t["wallet"] for t in st.get("followedTraders") or []] if "followedTraderCount" in st else None

    wait_for(lambda: followed() == [PUBKEY_A], 60, "the strategy following the pool's rank 1")

    # new swaps in the ledger: the next scheduled run ranks the newcomer first, and says so; the strategy
    # follows the new rank 1, with an Event
    _record(ledger, VAULT, round_trips(VAULT, [0.04] * 80, first=NOW - 119 * DAY, last=NOW - 21 * DAY))
    wait_for(lambda: kube.get("traderpool", "leaders")["status"]["topTrader"] == VAULT, 30,
             "the rescored pool's new rank 1")
    assert kube.get("traderpool", "leaders")["status"]["eligible"] == 3
    # kopf posts Events from a background queue, after the status patch: wait for it, not read once
    wait_for(lambda: any(e["reason"] == "RankingChanged" and VAULT in e["message"] for e in kube.events("leaders")),
             30, "the RankingChanged Event")
    wait_for(lambda: followed() == [VAULT], 60, "the strategy following the new rank 1")
    changed = wait_for(lambda: [e for e in kube.events("topn") if e["reason"] == "FollowedTradersChanged"
                                and f"no longer following {PUBKEY_A}" in e["message"]], 30, "the Event")
    assert f"now following {VAULT}" in changed[0]["message"]


def test_pool_from_labelled_configmaps_names_left_out_entries(kube: Kubectl, operators, ledger) -> None:
    _record(ledger, PUBKEY_A, round_trips(PUBKEY_A, steady(), first=NOW - 119 * DAY, last=NOW - DAY))
    for name, text in (("list-1", f"{PUBKEY_A}\n{PUBKEY_B}\n"), ("list-2", f"{VAULT}, not-a-wallet\n"),
                       ("unlabelled", PUBKEY_C)):
        labels = {} if name == "unlabelled" else {"xorj.io/pool": "main"}
        kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels},
                    "data": {"wallets": text}})
    operators(extra_env={"XORJ_OPERATOR_POOL_SCORE_SECONDS": "2"})
    kube.apply(pool("listed", walletConfigMaps={"matchLabels": {"xorj.io/pool": "main"}}))
    status = wait_for(lambda: ((kube.get("traderpool", "listed") or {}).get("status") or {}).get("lastScored")
                      and kube.get("traderpool", "listed")["status"], 60, "the pool scored")
    assert status["candidates"] == 3 and status["topTrader"] == PUBKEY_A
    valid = next(c for c in status["conditions"] if c["type"] == "CandidatesValid")
    assert valid["status"] == "False" and "'not-a-wallet' is not a base58 32-byte public key" in valid["message"]

    # a key CEL cannot judge (44 base58 characters, not 32 bytes): the operator refuses it by name
    kube.apply(pool("undecodable", wallets=["1" * 44]))
    scored = wait_for(lambda: next((c for c in ((kube.get("traderpool", "undecodable") or {}).get("status") or {})
                                    .get("conditions") or [] if c["type"] == "Scored"), None), 60,
                      "the operator's refusal")
    assert scored["status"] == "False" and scored["reason"] == "InvalidSpec"
    assert "spec.wallets.0" in scored["message"] and "exactly 32 bytes" in scored["message"]
    wait_for(lambda: any(e["reason"] == "InvalidSpec" for e in kube.events("undecodable")), 30, "the InvalidSpec Event")


def _record_refreshed(ledger: Any, wallet: str, swaps: list) -> None:
    """As a refresh records them: the rows and the wallet's history cursor in one transaction."""
    newest = swaps[-1].swap
    TraderSwapStore(ledger).record(wallet, swaps, TraderCursor(wallet, newest.signature, newest.slot))


def test_new_swaps_rescore_the_pool_before_its_schedule(kube: Kubectl, operators, ledger) -> None:
    steady_one, newcomer = str(Keypair().pubkey()), str(Keypair().pubkey())
    _record_refreshed(ledger, steady_one, round_trips(steady_one, steady(), first=NOW - 119 * DAY, last=NOW - DAY))
    _record_refreshed(ledger, newcomer, round_trips(newcomer, steady(10), first=NOW - 20 * DAY, last=NOW - DAY))
    # the schedule is an hour away: only new swaps can rescore the pool within this test
    operators(extra_env={"XORJ_OPERATOR_POOL_SCORE_SECONDS": "3600", "XORJ_OPERATOR_POOL_SWAPS_CHECK_SECONDS": "1"})
    kube.apply(pool("watched", wallets=[steady_one, newcomer]))
    first = wait_for(lambda: ((kube.get("traderpool", "watched") or {}).get("status") or {}).get("lastScored")
                     and kube.get("traderpool", "watched")["status"], 60, "the pool scored")
    assert (first["topTrader"], first["eligible"]) == (steady_one, 1)

    # nothing new: the checks read the watermark and rescore nothing
    time.sleep(4)
    assert kube.get("traderpool", "watched")["status"]["lastScored"] == first["lastScored"]

    # a refresh records the newcomer's longer history: the pool is rescored within seconds, not at its schedule
    _record_refreshed(ledger, newcomer, round_trips(newcomer, [0.04] * 80, first=NOW - 119 * DAY, last=NOW - 21 * DAY))
    wait_for(lambda: kube.get("traderpool", "watched")["status"]["topTrader"] == newcomer, 30,
             "the pool rescored after its candidate's new swaps")
    assert kube.get("traderpool", "watched")["status"]["eligible"] == 2
    wait_for(lambda: any(e["reason"] == "RankingChanged" and newcomer in e["message"]
                         for e in kube.events("watched")), 30, "the RankingChanged Event")
    assert {s.wallet: s for s in ledger.list_trader_scores()}[newcomer].rank == 1
