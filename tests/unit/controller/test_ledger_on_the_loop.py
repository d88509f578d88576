"""The operator's reconcilers reach the ledger's trades and halt on kopf's event loop
(``Runtime.ledger_run`` over xorj.ledger.aio), never through a worker thread: no blocking ``Ledger``
method whose transaction body exists in :mod:`xorj.ledger.transactions` is called in the controller,
and the reconcilers of trades and strategies hop to no thread for the ledger."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import xorj.controller
from xorj.ledger import transactions

CONTROLLER = Path(xorj.controller.__file__).parent
# reconcilers whose every ledger call has a transaction body
CONVERTED = ("copytrade/reconcile.py", "tradingstrategy/reconcile.py")
BODIES = {name for name, fn in vars(transactions).items()
          if inspect.isfunction(fn) and not name.startswith("_") and fn.__module__ == transactions.__name__}


def _blocking_ledger_methods_called(path: Path) -> set[str]:
    """``<x>.ledger.<body name>``: a method of the blocking Ledger that a transaction body stands for."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return {node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr in BODIES
            and isinstance(node.value, ast.Attribute) and node.value.attr == "ledger"}


def test_no_controller_module_calls_the_blocking_ledger_for_a_transaction_with_a_body():
    assert {"get_trade", "admit_trade", "cancel_pending", "trading_halt"} <= BODIES
    modules = sorted(CONTROLLER.rglob("*.py"))
    found = {str(m.relative_to(CONTROLLER)): sorted(_blocking_ledger_methods_called(m)) for m in modules}
    assert {name: calls for name, calls in found.items() if calls} == {}


def test_the_converted_reconcilers_run_ledger_transactions_on_the_loop():
    for name in CONVERTED:
        tree = ast.parse((CONTROLLER / name).read_text(), filename=name)
        attrs = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
        assert "ledger_run" in attrs, name
        assert not attrs & {"to_thread", "run_in_executor", "ledger_call"}, name
        on_thread = [node.args[0].value for node in ast.walk(tree)
                     if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                     and node.func.attr == "ledger_call_on_thread"]
        assert on_thread == [], name


def test_the_trader_pool_reconciler_hands_only_cpu_work_to_a_thread():
    """The swaps' reads and the scores' write are transaction bodies run on the loop; only the FIFO
    realization and the Trust Score (seconds of CPU, no I/O) are handed to a thread."""
    name = "traderpool/reconcile.py"
    tree = ast.parse((CONTROLLER / name).read_text(), filename=name)
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)]
    on_loop = sorted(ast.unparse(node.args[0].func) for node in calls if node.func.attr in {"ledger_run", "run"})
    on_thread = [ast.unparse(node.args[0]) for node in calls if node.func.attr == "to_thread"]
    assert on_loop == ["scores.upsert", "trader_swaps.history_watermark", "trader_swaps.history_watermark",
                       "trader_swaps.priced_of", "trader_swaps.versions"]
    assert on_thread == ["lambda: ranked(histories.assemble(wallets, versions, priced, cash_mints=cash_mints), "
                         "spec, now_ts)"]
    assert not {node.func.attr for node in calls} & {"run_in_executor", "ledger_call_on_thread", "ledger_call"}
