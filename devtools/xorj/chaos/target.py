"""Where a chaos experiment finds the system under test.

Experiments declare their ``configuration`` from environment variables (so one experiment file runs
unchanged against the local chaos environment, ``xorj dev up`` or a kind cluster with the chart):

- ``XORJ_CHAOS_ENV``: path of the local chaos environment's ``env.json`` (``xorj chaos env up``), or
  of ``demo.json`` (``xorj dev up``); every field below defaults from it;
- ``XORJ_CHAOS_LEDGER_DSN``: the ledger as the probes read it (directly, never through the proxy);
- ``XORJ_CHAOS_CHAIN_ADMIN_URL``: the local chain's admin API (fault injection, swap counts);
- ``XORJ_CHAOS_STRATEGY`` (the ledger's key: ``namespace/name`` of the TradingStrategy on a
  cluster), ``XORJ_CHAOS_VAULT``, ``XORJ_CHAOS_INPUT_MINT``, ``XORJ_CHAOS_OUTPUT_MINT``;
- ``XORJ_CHAOS_NAMESPACE``, ``KUBECONFIG``: the cluster side (CopyTrades, pods);
- ``XORJ_CHAOS_RUN_ID``: tags the trades an experiment run submits (``xorj chaos run`` sets it).

Probes and actions receive the experiment's ``configuration`` dict; :func:`resolve` turns it into a
:class:`Target`. Nothing here is a secret except the DSN, which is never logged or returned.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xorj.errors import InvalidInputError

# configuration key -> environment variable (the experiments' `configuration` uses the same names)
CONFIG_KEYS: dict[str, str] = {
    "xorj_env": "XORJ_CHAOS_ENV",
    "ledger_dsn": "XORJ_CHAOS_LEDGER_DSN",
    "chain_admin_url": "XORJ_CHAOS_CHAIN_ADMIN_URL",
    "strategy": "XORJ_CHAOS_STRATEGY",
    "vault": "XORJ_CHAOS_VAULT",
    "input_mint": "XORJ_CHAOS_INPUT_MINT",
    "output_mint": "XORJ_CHAOS_OUTPUT_MINT",
    "namespace": "XORJ_CHAOS_NAMESPACE",
    "run_id": "XORJ_CHAOS_RUN_ID",
    "alertmanager_url": "XORJ_CHAOS_ALERTMANAGER_URL",
}


@dataclass
class Target:
    ledger_dsn: str
    chain_admin_url: str | None = None
    strategy: str | None = None
    vault: str | None = None
    input_mint: str | None = None
    output_mint: str | None = None
    namespace: str | None = None
    kubeconfig: str | None = None
    run_id: str = "manual"
    strategy_name: str | None = None  # the TradingStrategy's name (``strategy`` is the ledger's key, ns/name)
    alertmanager_url: str | None = None  # the environment's Alertmanager (xorj.devenv.monitoring), if it runs one
    env_file: Path | None = None
    state: dict[str, Any] = field(default_factory=dict, repr=False)  # the env/demo state file's content

    @property
    def state_dir(self) -> Path:
        """Where actions keep what a run needs across activities (fault marks, killed pids)."""
        base = self.env_file.parent if self.env_file else Path(os.environ.get("TMPDIR", "/tmp")) / "xorj-chaos"
        path = base / "runs" / self.run_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def require(self, name: str) -> Any:
        value = getattr(self, name)
        if not value:
            env = CONFIG_KEYS.get(name, name.upper())
            raise InvalidInputError(f"chaos target: {name} is not configured (set {env} or XORJ_CHAOS_ENV)")
        return value


def _value(configuration: dict[str, Any] | None, key: str) -> str | None:
    configuration = configuration or {}
    value = configuration.get(key)
    if value in (None, ""):
        value = os.environ.get(CONFIG_KEYS[key])
    return value or None


def _load_state(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"XORJ_CHAOS_ENV: cannot read {path}: {type(exc).__name__}") from None


def _from_demo(state: dict[str, Any], root: Path) -> dict[str, Any]:
    """The fields of ``xorj dev up``'s demo.json (its chain state and the demo's strategy)."""
    from xorj.devenv import demo

    namespace = os.environ.get("XORJ_DEMO_NAMESPACE", demo.NAMESPACE)
    name = (demo.example_strategy().get("metadata") or {}).get("name") or demo.STRATEGY  # as Demo.up names it
    # the ledger keys trades by "namespace/name" of their TradingStrategy
    out: dict[str, Any] = {"namespace": namespace, "strategy": f"{namespace}/{name}", "strategy_name": name,
                           "kubeconfig": state.get("kubeconfig")}
    alertmanager = (state.get("processes") or {}).get("alertmanager")
    if alertmanager and alertmanager.get("port"):
        out["alertmanager_url"] = f"http://127.0.0.1:{alertmanager['port']}"
    if state.get("postgres_port"):
        out["ledger_dsn"] = f"postgresql://postgres@127.0.0.1:{state['postgres_port']}/{demo.LEDGER_DATABASE}"
    elif state.get("ledger_dsn_file"):
        # `xorj dev up --ledger ha`: the chart's ledger through the relay to its primary Service, as the
        # operator's login (the owner of the tables: it sees every namespace's trades)
        from xorj.devenv.ha_ledger import read_dsn

        out["ledger_dsn"] = read_dsn(Path(state["ledger_dsn_file"]).parent)
    chain_file = root / "chain" / "chain.json"
    if chain_file.exists():
        chain = json.loads(chain_file.read_text())
        out["chain_admin_url"] = chain["admin_url"]
        out["vault"] = next(iter(chain["vaults"]), None)
        out["input_mint"] = chain["mints"]["USDC"]["address"]
        out["output_mint"] = chain["mints"]["SOL"]["address"]
    return out


def resolve(configuration: dict[str, Any] | None = None) -> Target:
    """The target from the experiment configuration, environment variables and the state file."""
    base: dict[str, Any] = {}
    env_file = _value(configuration, "xorj_env")
    path = Path(env_file).expanduser() if env_file else None
    state: dict[str, Any] = {}
    if path is not None:
        state = _load_state(path)
        base = dict(state.get("target", {})) if "target" in state else _from_demo(state, path.parent)
    values = {key: _value(configuration, key) or base.get(key) for key in CONFIG_KEYS if key != "xorj_env"}
    strategy_name = base.get("strategy_name") or (values["strategy"] or "").rpartition("/")[2] or None
    if not values["ledger_dsn"]:
        raise InvalidInputError("chaos target: ledger_dsn is not configured (set XORJ_CHAOS_LEDGER_DSN or XORJ_CHAOS_ENV)")
    return Target(
        ledger_dsn=values["ledger_dsn"], chain_admin_url=values["chain_admin_url"], strategy=values["strategy"],
        vault=values["vault"], input_mint=values["input_mint"], output_mint=values["output_mint"],
        namespace=values["namespace"], kubeconfig=os.environ.get("KUBECONFIG") or base.get("kubeconfig"),
        run_id=values["run_id"] or "manual", env_file=path, state=state, strategy_name=strategy_name,
        alertmanager_url=values["alertmanager_url"],
    )


def trade_scale(configuration: dict[str, Any] | None = None) -> float:
    """The run's ``trade_scale`` (see :mod:`xorj.chaos.sets`): the experiment configuration's value,
    else ``XORJ_CHAOS_TRADE_SCALE``, else 1 (the experiment as written)."""
    from xorj.chaos.sets import TRADE_SCALE_ENV, TRADE_SCALE_KEY, parse_trade_scale

    value = (configuration or {}).get(TRADE_SCALE_KEY)
    if value in (None, ""):
        value = os.environ.get(TRADE_SCALE_ENV)
    return parse_trade_scale(value)
