"""The expiry rule (issue 12, section 1): a "not found" proves expiry only when the status answer is as
of a slot at or after the finalized block that is past the attempt's window."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from xorj.domain.expiry import ExpiryVerdict, FinalizedPoint, expiry_verdict

LVBH = 1_150


def test_window_not_over_is_live_whatever_the_status_slot():
    finalized = FinalizedPoint(slot=2_150, height=LVBH)
    assert expiry_verdict(last_valid_block_height=LVBH, finalized=finalized,
                          status_context_slot=9_999) is ExpiryVerdict.LIVE


def test_issue_12_recipe_a_node_60_blocks_behind_is_stale():
    # finalized 32 blocks behind the head, the status node 60 behind: its answer predates the proof
    head_slot, head_height = 2_190, 1_190
    finalized = FinalizedPoint(slot=head_slot - 32, height=head_height - 32)
    assert finalized.height > LVBH
    assert expiry_verdict(last_valid_block_height=LVBH, finalized=finalized,
                          status_context_slot=head_slot - 60) is ExpiryVerdict.STALE_STATUS
    # a node 30 behind is still ahead of the finalized block: its "not found" is proof
    assert expiry_verdict(last_valid_block_height=LVBH, finalized=finalized,
                          status_context_slot=head_slot - 30) is ExpiryVerdict.EXPIRED


def test_status_answered_as_of_the_finalized_slot_itself_is_enough():
    finalized = FinalizedPoint(slot=5_000, height=LVBH + 1)
    assert expiry_verdict(last_valid_block_height=LVBH, finalized=finalized,
                          status_context_slot=5_000) is ExpiryVerdict.EXPIRED
    assert expiry_verdict(last_valid_block_height=LVBH, finalized=finalized,
                          status_context_slot=4_999) is ExpiryVerdict.STALE_STATUS


@given(lvbh=st.integers(0, 10**9), height=st.integers(0, 10**9), slot_gap=st.integers(0, 10**6),
       context=st.integers(0, 2 * 10**9))
def test_expired_only_past_the_window_and_with_a_fresh_answer(lvbh, height, slot_gap, context):
    finalized = FinalizedPoint(slot=height + slot_gap, height=height)
    verdict = expiry_verdict(last_valid_block_height=lvbh, finalized=finalized, status_context_slot=context)
    assert (verdict is ExpiryVerdict.EXPIRED) == (height > lvbh and context >= finalized.slot)
    assert (verdict is ExpiryVerdict.LIVE) == (height <= lvbh)
