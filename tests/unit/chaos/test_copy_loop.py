"""The watcher experiments' pure parts: the on-chain verdict of lead swaps against follower fills,
the Helius delivery the actions post (the watcher's own parser reads it), the follower strategy the
local chaos environment writes (the watcher's follow book reads it), the supervisor's per-replica
settings, and the report's note."""

from __future__ import annotations

import pytest
from solders.keypair import Keypair

from xorj.chaos import report
from xorj.chaos.actions import helius_delivery
from xorj.chaos.localenv import FOLLOWER_FIXED_USD, FOLLOWER_STRATEGY, follower_strategy
from xorj.chaos.probes import copies_on_chain
from xorj.chaos.supervisor import replica_env
from xorj.watcher.follows import StaticFollowBook
from xorj.watcher.webhook import leader_signatures

STRATEGY = "xorj/chaos-follower"
LEADS = ["lead-a", "lead-b", "lead-c"]
ALL_ACCEPTED = {"lead-a": "websocket", "lead-b": "poll", "lead-c": "webhook"}


def _verdict(**changes):
    given = {"lead_swaps": LEADS, "sent": LEADS, "accepted": ALL_ACCEPTED, "fills": {STRATEGY: list(LEADS)}}
    given.update(changes)
    return copies_on_chain(**given)


def test_every_lead_swap_filled_once_and_accepted_is_ok():
    verdict = _verdict()
    assert verdict["ok"] is True
    assert verdict["strategies"][STRATEGY] == {"copied_once": 3, "missing": [], "missing_count": 0,
                                               "duplicate_fills": 0, "unexplained_fills": 0}
    assert verdict["accepted_by_source"] == {"poll": 1, "webhook": 1, "websocket": 1}


@pytest.mark.parametrize(("changes", "expect"), [
    ({"fills": {STRATEGY: ["lead-a", "lead-c"]}}, {"missing_count": 1, "missing": ["lead-b"], "copied_once": 2}),
    ({"fills": {STRATEGY: [*LEADS, "lead-b"]}}, {"duplicate_fills": 1, "copied_once": 2}),
    ({"fills": {STRATEGY: [*LEADS, None]}}, {"unexplained_fills": 1, "copied_once": 3}),
])
def test_a_missing_a_second_or_an_unexplained_fill_fails(changes, expect):
    verdict = _verdict(**changes)
    assert verdict["ok"] is False
    for key, value in expect.items():
        assert verdict["strategies"][STRATEGY][key] == value


def test_every_following_strategy_must_copy_each_lead_swap():
    verdict = _verdict(fills={STRATEGY: list(LEADS), "xorj/second": ["lead-a", "lead-b"]})
    assert verdict["ok"] is False
    assert verdict["strategies"]["xorj/second"]["missing"] == ["lead-c"]


def test_a_fill_of_a_swap_outside_the_window_is_not_a_duplicate_of_this_run():
    assert _verdict(fills={STRATEGY: [*LEADS, "earlier-run"]})["ok"] is True


@pytest.mark.parametrize(("changes", "field"), [
    ({"accepted": {"lead-a": "poll", "lead-b": "poll"}}, "not_accepted"),
    ({"sent": ["lead-a", "lead-b"]}, "not_sent_by_run"),
    ({"sent": [*LEADS, "lead-never-landed"]}, "sent_not_on_chain"),
])
def test_a_lead_swap_not_accepted_not_sent_or_not_landed_fails(changes, field):
    verdict = _verdict(**changes)
    assert verdict["ok"] is False and len(verdict[field]) == 1


def test_no_lead_swap_or_no_follower_proves_nothing():
    assert _verdict(lead_swaps=[], sent=[], fills={STRATEGY: []})["ok"] is False
    assert _verdict(fills={})["ok"] is False


def test_the_helius_delivery_is_read_by_the_watchers_own_parser():
    leader = str(Keypair().pubkey())
    signatures = [str(Keypair().sign_message(bytes([i]))) for i in range(3)]
    assert leader_signatures(helius_delivery(leader, signatures), {leader}) == [(leader, s) for s in signatures]


def test_the_follower_strategy_follows_the_leader_with_its_vault():
    leader, vault = str(Keypair().pubkey()), str(Keypair().pubkey())
    book = StaticFollowBook([follower_strategy(leader, vault, "http://127.0.0.1:1/", "http://127.0.0.1:1/swap/v1")],
                            cash_mints=frozenset({str(Keypair().pubkey())}))
    [follower] = book.followers_of(leader)
    assert (follower.strategy_key, follower.vault) == (FOLLOWER_STRATEGY, vault)
    assert follower.policy.fixed_usd == FOLLOWER_FIXED_USD


def test_each_supervised_command_gets_its_own_port_settings(tmp_path):
    port_file = tmp_path / "x.port"
    assert replica_env("executor", "executor-3", port_file) == {
        "XORJ_EXECUTOR_ID": "executor-3", "XORJ_HTTP_PORT": "0", "XORJ_HTTP_PORT_FILE": str(port_file)}
    assert replica_env("watcher", "watcher-1", port_file) == {
        "XORJ_WATCHER_HTTP_PORT": "0", "XORJ_WATCHER_HTTP_PORT_FILE": str(port_file)}
    with pytest.raises(ValueError, match="--command"):
        replica_env("operator", "operator-1", port_file)


def test_the_report_says_how_many_lead_swaps_were_copied_and_which_source_won():
    note = report.lead_copies_note(_verdict())
    assert note.startswith("3 lead swaps on chain, 3 copied by exactly one fill per following strategy (1)")
    assert "poll 1, webhook 1, websocket 1" in note and "NOT" not in note
    assert "NOT copied 1" in report.lead_copies_note(_verdict(fills={STRATEGY: ["lead-a", "lead-b"]}))
