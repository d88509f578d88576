"""The copy loop's pieces of `xorj dev up` that need no services: the second vault from the chain's
state, the topN strategy the loop applies, and the switch that leaves the loop out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xorj.controller.models import TradingStrategy
from xorj.devenv import demo as demo_module
from xorj.devenv.demo import POOL, TOP_N_STRATEGY, Demo, example_strategy, read_chain_info, top_n_strategy


def write_two_vaults(directory: Path) -> None:
    (directory / "vaults").mkdir(parents=True)
    vaults = {}
    for name, content in (("A", "[1, 2, 3]"), ("B", "[4, 5, 6]")):
        path = directory / "vaults" / f"{name}.json"
        path.write_text(content)
        vaults[name * 43] = str(path)
    (directory / "chain.json").write_text(json.dumps({
        "rpc_url": "http://127.0.0.1:1/", "swap_api_url": "http://127.0.0.1:1/swap/v1",
        "mints": {"USDC": {"address": "U" * 43}, "SOL": {"address": "S" * 43}}, "vaults": vaults}))


def test_the_second_vault_is_the_followers_and_no_keypair_is_in_the_repr(tmp_path: Path) -> None:
    write_two_vaults(tmp_path)
    info = read_chain_info(tmp_path)
    assert info.vault_public_key == "A" * 43 and info.vault_keypair == b"[1, 2, 3]"  # the example strategy's
    assert info.follower_vault_public_key == "B" * 43 and info.follower_vault_keypair == b"[4, 5, 6]"
    assert "1, 2, 3" not in repr(info) and "4, 5, 6" not in repr(info)


def test_the_top_n_strategy_follows_the_pool_with_its_own_vault_and_is_valid(tmp_path: Path) -> None:
    write_two_vaults(tmp_path)
    chain = read_chain_info(tmp_path)
    example = example_strategy()
    strategy = top_n_strategy(example, "ns", chain)
    TradingStrategy.model_validate(strategy)  # what the API server and the operator accept
    spec = strategy["spec"]
    assert strategy["metadata"] == {"name": TOP_N_STRATEGY, "namespace": "ns"}
    assert spec["topN"] == {"count": 1, "pool": POOL} and "traders" not in spec
    assert spec["vault"]["publicKey"] == "B" * 43 != example["spec"]["vault"]["publicKey"]
    assert spec["endpoints"] == {"rpcUrl": "http://127.0.0.1:1", "swapApiUrl": "http://127.0.0.1:1/swap/v1"}
    assert spec["risk"] == example["spec"]["risk"]  # the example's limits hold for the copies too
    assert spec["executor"]["replicas"] == 1 and "traders" in example["spec"]  # the example is not changed


def test_the_loop_is_on_by_default_and_turned_off_by_setting_or_argument(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("XORJ_DEMO_LOOP", raising=False)
    assert Demo(root=tmp_path).loop  # `make demo` shows the copy loop
    assert not Demo(root=tmp_path, loop=False).loop
    monkeypatch.setenv("XORJ_DEMO_LOOP", "0")
    assert not Demo(root=tmp_path).loop
    assert Demo(root=tmp_path, loop=True).loop


def test_down_stops_the_watcher_and_the_leaders_before_the_operator_and_chain() -> None:
    order = demo_module.PROCESS_NAMES
    assert order.index("watcher") < order.index("operator") and order.index("leaders") < order.index("chain")


def test_the_loop_refuses_a_chain_with_one_vault_clearly(tmp_path: Path) -> None:
    from tests.unit.devenv.test_demo import write_chain_state
    from xorj.errors import EnvironmentSetupError

    write_chain_state(tmp_path)
    with pytest.raises(EnvironmentSetupError, match="its own"):
        Demo(root=tmp_path / "demo", loop=True).copy_loop({"processes": {}}, "postgresql://x@127.0.0.1:1/x",
                                                           read_chain_info(tmp_path), None)
