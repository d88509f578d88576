"""A node's state is reused only for the cluster it joined: another cluster, or the same name
re-created with a new CA, has the node removed first (its kubelet would fail with x509 errors)."""

from __future__ import annotations

from xorj.devenv.node.lifecycle import stale_join


def test_no_node_and_the_same_cluster_are_reused() -> None:
    assert stale_join(None, ("xorj", "ca1")) is None
    assert stale_join(("xorj", "ca1"), ("xorj", "ca1")) is None


def test_a_node_of_before_digests_is_judged_by_name() -> None:
    assert stale_join(("xorj", None), ("xorj", "ca1")) is None
    assert "cluster other" in (stale_join(("other", None), ("xorj", "ca1")) or "")


def test_another_cluster_or_a_re_created_one_is_stale() -> None:
    assert stale_join(("xorj-chaos", "ca1"), ("xorj", "ca1")) == (
        "it was brought up for cluster xorj-chaos, not xorj")
    assert "re-created" in (stale_join(("xorj", "ca1"), ("xorj", "ca2")) or "")
