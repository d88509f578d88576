"""Chaos Toolkit actions: load and faults, each acting on the real part it names.

Local environment (``xorj chaos env up``): chain faults through the chain's admin API, Postgres
backends terminated and the server restarted, the executors' path to Postgres cut at the TCP proxy,
executor processes killed (the pool replaces them, as a ReplicaSet would), the kill switch set in the
executors' settings. ``xorj dev up`` / kind: the same ledger and chain actions; pods, the operator and
the API server through their own actions (chaostoolkit-kubernetes for pods and NetworkPolicy).
Every fault action records its fault class (:mod:`xorj.chaos.marks`) so alert probes know what to expect.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time
import urllib.error
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from xorj.chaos import marks
from xorj.chaos.probes import connect_ledger
from xorj.chaos.sets import scaled
from xorj.chaos.target import Target, resolve, trade_scale
from xorj.errors import EnvironmentSetupError, InvalidInputError


def _http(url: str, method: str = "GET", body: Any = None, timeout: float = 10.0) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raise EnvironmentSetupError(f"{method} {url}: HTTP {exc.code}: {exc.read().decode(errors='replace')}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise EnvironmentSetupError(f"{method} {url}: unreachable: {exc}") from None


def chain_admin(target: Target, method: str, path: str, body: Any = None) -> Any:
    return _http(target.require("chain_admin_url").rstrip("/") + path, method, body)


# -- run bookkeeping --------------------------------------------------------------------------------

QUIET_WITHIN_SECONDS = 240.0  # past an alert's fault window (2 min) and `for:`, with room for evaluation


def begin_run(quiet_alerts: list[str] | None = None, quiet_within_seconds: float = QUIET_WITHIN_SECONDS,
              configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """First activity of every method: forget marks of an earlier run with the same id. With
    ``quiet_alerts`` (the alerts the experiment asks Alertmanager about), first wait up to
    ``quiet_within_seconds`` until none of them is active: an alert an earlier experiment raised stays
    active for its rule's fault window, and this run must see its own fault fire it. Still active after
    the wait: the run goes on, and its alert probe reports what it finds."""
    from xorj.chaos.probes import active_alerts

    target = resolve(configuration)
    waited, still_active = 0.0, []
    if quiet_alerts and target.alertmanager_url:
        started = time.monotonic()
        while True:
            still_active = [name for name in quiet_alerts if active_alerts(target.alertmanager_url, name)]
            waited = time.monotonic() - started
            if not still_active or waited >= quiet_within_seconds:
                break
            time.sleep(1.0)
    marks.reset(target)
    marks.write(target, "begin")
    return {"run_id": target.run_id, "waited_for_quiet_s": round(waited, 1), "still_active": still_active}


def hold(seconds: float, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Keep the faults injected so far active for ``seconds`` times the run's ``trade_scale``: a
    fault window that grows with the load (see :mod:`xorj.chaos.sets`), where a pause would not."""
    held = float(seconds) * trade_scale(configuration)
    time.sleep(held)
    return {"held_s": round(held, 1)}


# -- load -------------------------------------------------------------------------------------------

def load(count: int = 30, min_amount: int = 1_000_000, max_amount: int = 3_000_000, spread_seconds: float = 0.0,
         via: str = "ledger", configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Submit ``count`` copy trades (USDC -> SOL, random amounts) for the target strategy, spread over
    ``spread_seconds``: admitted to the ledger as the operator admits them (``via=ledger``) or as
    CopyTrade resources (``via=copytrades``, through the API server and the operator). The run's
    ``trade_scale`` multiplies both (same rate as written, for longer)."""
    from xorj.ledger.records import TradeIntent
    from xorj.ledger.repository import Ledger

    count = int(count)
    if not 1 <= count <= 10_000:
        raise InvalidInputError(f"load.count must be between 1 and 10000, got {count}")
    if via not in ("ledger", "copytrades"):
        raise InvalidInputError(f"load.via must be 'ledger' or 'copytrades', got {via!r}")
    scale = trade_scale(configuration)
    count, spread_seconds = scaled(count, scale), float(spread_seconds) * scale
    target = resolve(configuration)
    rng = random.Random()
    marks.write(target, "load")
    gap = float(spread_seconds) / count
    created = 0
    if via == "copytrades":
        api = _custom_objects(target)
        for i in range(count):
            name = f"chaos-{target.run_id}-{i}-{uuid.uuid4().hex[:4]}"
            api.create_namespaced_custom_object("trading.xorj.io", "v1alpha1", target.require("namespace"),
                                                "copytrades", _copytrade(target, name, rng.randint(min_amount, max_amount)))
            created += 1
            time.sleep(gap)
        # each CopyTrade fans out into one trade per active vault of the strategy: that many are due
        width = fanout_width(target)
        marks.add(target, "loaded", created * width)
        return {"submitted": created, "via": via, "vaults": width}
    from xorj.errors import LedgerError

    retries = 0
    with Ledger.connect(target.ledger_dsn, apply_migrations=False, max_size=1) as ledger:
        for _ in range(count):
            intent = TradeIntent(
                strategy=target.require("strategy"), vault=target.require("vault"),
                lead_signature=f"chaos-{target.run_id}-{uuid.uuid4().hex}",
                lead_trader="LeadTrader1111111111111111111111111111111111",
                input_mint=target.require("input_mint"), output_mint=target.require("output_mint"),
                amount=rng.randint(int(min_amount), int(max_amount)), notional_usd=Decimal(2))
            # as the operator admits: retried while the ledger is away (the faults here are ledger
            # faults too); safe, the idempotency key makes a repeat of a committed admit a no-op
            deadline = time.monotonic() + 120
            while True:
                try:
                    ledger.admit_trade(intent, actor="chaos-load")
                    break
                except LedgerError:
                    if time.monotonic() > deadline:
                        raise
                    retries += 1
                    time.sleep(0.5)
            created += 1
            time.sleep(gap)
    marks.add(target, "loaded", created)
    return {"submitted": created, "via": via, "admit_retries": retries}


def fanout_width(target: Target) -> int:
    """How many trades one CopyTrade of the target strategy becomes: its own vault and every active
    Vault of it, counted as the ledger's fan-out admission counts them."""
    from xorj.ledger import vaults
    from xorj.ledger.repository import Ledger

    with Ledger.connect(target.ledger_dsn, apply_migrations=False, max_size=1) as ledger:
        return ledger.run(vaults.active_vault_count(target.require("strategy"), target.require("vault")))


def _copytrade(target: Target, name: str, amount: int, lead_signature: str | None = None) -> dict[str, Any]:
    from solders.signature import Signature

    return {"apiVersion": "trading.xorj.io/v1alpha1", "kind": "CopyTrade",
            "metadata": {"name": name, "namespace": target.require("namespace"), "labels": {"xorj.io/chaos-run": target.run_id}},
            "spec": {"strategy": target.require("strategy_name"), "leadTrader": "7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU",
                     "leadSignature": lead_signature or str(Signature.from_bytes(os.urandom(64))),
                     "inputMint": target.require("input_mint"), "outputMint": target.require("output_mint"),
                     "amount": amount, "notionalUsd": 2.0}}


def replay_trades(count: int = 10, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """The same lead trades delivered again (a webhook retried, a backfill overlapping): admit ``count``
    of this run's trades (times the run's ``trade_scale``) a second time with the same idempotency
    key. ``created`` must stay 0."""
    from xorj.ledger.records import TradeIntent
    from xorj.ledger.repository import Ledger

    count = scaled(int(count), trade_scale(configuration))
    target = resolve(configuration)
    with connect_ledger(target.ledger_dsn) as conn:
        rows = conn.execute(
            """SELECT strategy, vault, lead_signature, lead_trader, input_mint, output_mint, amount FROM trades
                WHERE lead_signature LIKE %s ORDER BY random() LIMIT %s""",
            (f"chaos-{target.run_id}-%", int(count))).fetchall()
    created = 0
    with Ledger.connect(target.ledger_dsn, apply_migrations=False, max_size=1) as ledger:
        for strategy, vault, lead, trader, imint, omint, amount in rows:
            result = ledger.admit_trade(TradeIntent(strategy, vault, lead, trader, imint, omint, int(amount)),
                                        actor="chaos-replay")
            created += int(result.created)
    return {"replayed": len(rows), "created": created}


# -- the copy loop: lead swaps, webhook deliveries, the watcher -------------------------------------

LEAD_WINDOW_FILE = "lead-window.json"  # the lead trader and the chain slot the run's lead swaps start at
LEAD_SIGNATURES_FILE = "lead-signatures.json"  # the lead swaps this run sent, in order


def _copy_loop(target: Target) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The local chaos environment's lead trader and following strategies (xorj.chaos.localenv)."""
    leader, followers = target.state.get("leader"), target.state.get("followers")
    if not leader or not followers:
        raise InvalidInputError("the watcher experiments need the local chaos environment's copy loop "
                                "(a lead trader and a following strategy: `xorj chaos env up`)")
    return leader, list(followers)


def run_lead_signatures(target: Target) -> list[str]:
    """The lead swaps this run's :func:`lead_swaps` sent (empty for the other experiments)."""
    try:
        return list(json.loads((target.state_dir / LEAD_SIGNATURES_FILE).read_text()))
    except (OSError, ValueError):
        return []


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value))
    tmp.replace(path)


def _rpc_url(target: Target) -> str:
    # the local chain serves JSON-RPC at "/" beside its admin API at "/admin"
    return target.require("chain_admin_url").rstrip("/").removesuffix("/admin") + "/"


def watcher_state(target: Target) -> dict[str, Any]:
    """The watcher supervisor's state (xorj.chaos.supervisor): live pids and HTTP ports."""
    record = target.state.get("watcher")
    if not record:
        raise InvalidInputError("no supervised watcher in XORJ_CHAOS_ENV (the local chaos environment runs one)")
    try:
        return json.loads(Path(record["file"]).read_text())
    except (OSError, ValueError) as exc:
        raise EnvironmentSetupError(f"watcher supervisor state {record['file']} unreadable: {exc}") from None


def helius_delivery(leader: str, signatures: list[str]) -> list[dict[str, Any]]:
    """A Helius enhanced-transaction webhook delivery of ``signatures`` signed by ``leader`` (the
    fields the watcher reads, plus the kind of claims it must ignore and re-read from the chain)."""
    return [{"signature": s, "feePayer": leader, "type": "SWAP", "source": "JUPITER",
             "accountData": [{"account": leader, "nativeBalanceChange": -5000}]} for s in signatures]


async def _post_deliveries(http: Any, target: Target, leader: str, signatures: list[str], copies: int) -> dict[str, int]:
    """POST the same delivery ``copies`` times at once to the live watcher's webhook. A refused or dead
    receiver is counted, not raised: Helius retries, and polling fills what no delivery brought."""
    import asyncio

    import httpx

    token = Path(target.state["watcher"]["token_file"]).read_text().strip()
    ports = list(watcher_state(target).get("ports", {}).values())
    counts = {"accepted": 0, "refused": 0, "queued": 0}
    if not ports:
        counts["refused"] += copies
        return counts
    url = f"http://127.0.0.1:{ports[0]}/webhook"
    body = helius_delivery(leader, signatures)

    async def post() -> None:
        try:
            answer = await http.post(url, json=body, headers={"Authorization": token}, timeout=5.0)
        except httpx.HTTPError:
            counts["refused"] += 1
            return
        if answer.status_code == 200:
            counts["accepted"] += 1
            counts["queued"] += int(answer.json().get("queued", 0))
        else:
            counts["refused"] += 1

    await asyncio.gather(*(post() for _ in range(int(copies))))
    return counts


def lead_swaps(count: int = 40, spread_seconds: float = 60.0, min_usdc: int = 5, max_usdc: int = 20,
               webhook_copies: int = 0, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """The lead trader swaps (USDC -> SOL, ``min_usdc``..``max_usdc`` whole USDC) ``count`` times over
    ``spread_seconds`` on the local chain, signed with its own key, as `xorj dev leaders` does; the
    watcher is to copy each once per following strategy. With ``webhook_copies``, each swap is also
    delivered that many times at once to the watcher's webhook as soon as it is sent, racing the
    WebSocket push and polling. Records the run's lead swaps (for the probes) and counts
    ``count`` x following strategies as the trades the run loaded. The run's ``trade_scale``
    multiplies ``count`` and ``spread_seconds``."""
    import asyncio

    import httpx

    from xorj.devenv.chain.environment import read_keypair
    from xorj.devenv.leaders import LeaderWallet, LocalMarket
    from xorj.domain.leaders import LeaderStyle

    count = int(count)
    if not 1 <= count <= 10_000:
        raise InvalidInputError(f"lead_swaps.count must be between 1 and 10000, got {count}")
    if not 1 <= int(min_usdc) <= int(max_usdc):
        raise InvalidInputError(f"lead_swaps: need 1 <= min_usdc <= max_usdc, got {min_usdc}..{max_usdc}")
    if not 0 <= int(webhook_copies) <= 20:
        raise InvalidInputError(f"lead_swaps.webhook_copies must be between 0 and 20, got {webhook_copies}")
    scale = trade_scale(configuration)
    count, spread_seconds = scaled(count, scale), float(spread_seconds) * scale
    target = resolve(configuration)
    leader, followers = _copy_loop(target)
    wallet = LeaderWallet(LeaderStyle.STEADY, read_keypair(Path(leader["key_file"])), Path(leader["key_file"]))
    rng = random.Random()
    gap = spread_seconds / count
    sent: list[str] = []
    posted = {"accepted": 0, "refused": 0, "queued": 0}

    async def trade() -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            market = LocalMarket(_rpc_url(target), http)
            await market.connect()
            slot = int(await market.rpc("getSlot", {"commitment": "processed"}))
            _write_json(target.state_dir / LEAD_WINDOW_FILE, {"leader": leader["pubkey"], "from_slot": slot})
            _write_json(target.state_dir / LEAD_SIGNATURES_FILE, [])
            marks.write(target, "load")
            if webhook_copies:
                marks.fault(target, "DUPLICATE_DELIVERY")
            started = time.monotonic()
            for i in range(count):
                signature, _ = await market.swap(wallet, "USDC", "SOL", rng.randint(int(min_usdc), int(max_usdc)) * 10**6)
                sent.append(signature)
                _write_json(target.state_dir / LEAD_SIGNATURES_FILE, sent)
                marks.add(target, "loaded", len(followers))
                if webhook_copies:
                    for key, n in (await _post_deliveries(http, target, leader["pubkey"], [signature],
                                                          int(webhook_copies))).items():
                        posted[key] += n
                await asyncio.sleep(max(0.0, started + (i + 1) * gap - time.monotonic()))  # a steady rate
            await market.wait_confirmed(sent, timeout=60)

    asyncio.run(trade())
    out: dict[str, Any] = {"submitted": len(sent) * len(followers), "lead_swaps": len(sent), "via": "leader",
                           "followers": len(followers)}
    if webhook_copies:
        out["webhook_posts"] = posted
    return out


def redeliver_lead_webhooks(copies: int = 3, kill_between: bool = True,
                            configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every lead swap of this run delivered again as one Helius webhook delivery, ``copies`` times at
    once (a Helius retry storm); with ``kill_between``, the watcher is SIGKILLed and the storm repeated
    against its replacement, whose in-memory deduplication is gone, so only the ledger stands between
    the repeats and a second trade. Then the faults are cleared."""
    import asyncio

    import httpx

    target = resolve(configuration)
    leader, _ = _copy_loop(target)
    signatures = run_lead_signatures(target)
    marks.fault(target, "DUPLICATE_DELIVERY")
    from xorj.watcher.webhook import MAX_ENTRIES

    async def storm() -> dict[str, int]:
        totals = {"accepted": 0, "refused": 0, "queued": 0}
        async with httpx.AsyncClient() as http:
            for start in range(0, len(signatures), MAX_ENTRIES):
                for key, n in (await _post_deliveries(http, target, leader["pubkey"],
                                                      signatures[start:start + MAX_ENTRIES], int(copies))).items():
                    totals[key] += n
        return totals

    first = asyncio.run(storm())
    out: dict[str, Any] = {"lead_swaps": len(signatures), "copies": int(copies), "first": first}
    if kill_between:
        killed = kill_watcher(times=1, interval_seconds=0.5, configuration=configuration)
        _wait_watcher_serving(target, set(killed["killed"]), timeout=60)
        out["killed"] = killed["killed"]
        out["after_restart"] = asyncio.run(storm())
    marks.write(target, "cleared")
    return out


def _live_watcher(target: Target, not_in: set[int]) -> tuple[int, int | None] | None:
    state = watcher_state(target)
    for name, pid in state.get("executors", {}).items():
        if pid not in not_in:
            return pid, state.get("ports", {}).get(name)
    return None


def _wait_watcher_serving(target: Target, not_in: set[int], timeout: float) -> int:
    """Wait for a watcher process other than ``not_in`` to serve HTTP (its supervisor saw its port)."""
    deadline = time.monotonic() + timeout
    while True:
        live = _live_watcher(target, not_in)
        if live is not None and live[1] is not None:
            return live[0]
        if time.monotonic() > deadline:
            raise EnvironmentSetupError(f"no watcher serving {timeout:.0f}s after the last kill (its supervisor "
                                        "restarts it: see logs/watcher-supervisor.log and logs/watcher/)")
        time.sleep(0.1)


def kill_watcher(times: int = 5, interval_seconds: float = 4.0,
                 configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """SIGKILL the watcher ``times`` times, each time once its supervisor's replacement is up and
    serving and a random 50-100% of ``interval_seconds`` has passed (mid-stream: polling, a push or
    a webhook delivery half done)."""
    times = int(times)
    if not 1 <= times <= 100:
        raise InvalidInputError(f"kill_watcher.times must be between 1 and 100, got {times}")
    target = resolve(configuration)
    killed: list[int] = []
    rng = random.Random()
    for _ in range(times):
        pid = _wait_watcher_serving(target, set(killed), timeout=60)
        time.sleep(float(interval_seconds) * rng.uniform(0.5, 1.0))
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        killed.append(pid)
        marks.write(target, "fault:last")
    return {"killed": killed, "signal": "SIGKILL", "restarts": int(watcher_state(target).get("restarts", 0))}


# -- chain faults -----------------------------------------------------------------------------------

def chain_fault(kind: str, method: str = "*", probability: float = 1.0, count: int | None = None,
                delay_ms: int = 0, hang_s: float = 30.0, answer: str = "timeout", blocks: int = 0,
                alert_kind: str = "RPC_FAILURE", mode: str = "", node: str = "",
                configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Inject one fault into the local chain (see xorj.devenv.chain.faults for the kinds; ``blocks``
    is how far behind a ``status_lag`` node answers; ``mode`` is the attack of a ``hostile``
    swap-API fault; ``node``: only the requests to that RPC node, e.g. the watcher's, default all)."""
    target = resolve(configuration)
    spec: dict[str, Any] = {"kind": kind, "method": method, "probability": probability, "delay_ms": int(delay_ms),
                            "hang_s": hang_s, "answer": answer}
    if count is not None:
        spec["count"] = int(count)
    if blocks:
        spec["blocks"] = int(blocks)
    if mode:
        spec["mode"] = mode
    if node:
        spec["node"] = node
    fault_id = chain_admin(target, "POST", "/faults", spec)["id"]
    marks.fault(target, alert_kind)
    return {"fault_id": fault_id, **spec}


def snapshot_vault(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Remember the vault's funds and transactions now (the chain's admin API), for
    :func:`xorj.chaos.probes.vault_funds_accounted` to compare with after the run."""
    target = resolve(configuration)
    state = chain_admin(target, "GET", f"/vault?vault={target.require('vault')}")
    (target.state_dir / "vault-before.json").write_text(json.dumps(state))
    return {"lamports": state["lamports"], "transactions": len(state["transactions"])}


def clear_chain_faults(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Remove every chain fault; returns how often each one fired (proof the fault really happened)."""
    target = resolve(configuration)
    active = chain_admin(target, "GET", "/faults").get("faults", [])
    chain_admin(target, "DELETE", "/faults")
    marks.write(target, "cleared")
    fired: dict[str, int] = {}
    for f in active:  # hostile faults are told apart by their attack
        key = f"{f['kind']}:{f['method']}" + (f":{f['mode']}" if f.get("mode") else "")
        fired[key] = fired.get(key, 0) + int(f["fired"])
    return {"cleared": True, "fired": fired}


def wait_for_chain_fault(kind: str, method: str, fired_at_least: int = 1, timeout_s: float = 20.0,
                         configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Wait until the active chain fault(s) of ``kind`` on ``method`` fired at least ``fired_at_least``
    times in all (e.g. until the first sends of a load are in the hands of a latency fault), or
    ``timeout_s`` passed. Returns how often they fired and how long it took (never raises on time:
    the hypothesis judges the run)."""
    target = resolve(configuration)
    started = time.monotonic()
    fired = 0
    while True:
        fired = sum(int(f["fired"]) for f in chain_admin(target, "GET", "/faults").get("faults", [])
                    if f["kind"] == kind and f["method"] == method)
        if fired >= int(fired_at_least) or time.monotonic() - started >= float(timeout_s):
            return {"fired": fired, "waited_s": round(time.monotonic() - started, 2)}
        time.sleep(0.02)


def remove_chain_faults(kinds: list[str], method: str | None = None,
                        configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Remove the chain faults of these ``kinds`` (and ``method``, when given); the others keep firing.
    Returns how often each removed one fired."""
    target = resolve(configuration)
    if isinstance(kinds, str) or not kinds:
        raise InvalidInputError("remove_chain_faults.kinds must be a non-empty list of fault kinds")
    removed: dict[str, int] = {}
    for fault in chain_admin(target, "GET", "/faults").get("faults", []):
        if fault["kind"] in kinds and (method is None or fault["method"] == method):
            chain_admin(target, "DELETE", f"/faults/{fault['id']}")
            key = f"{fault['kind']}:{fault['method']}"
            removed[key] = removed.get(key, 0) + int(fault["fired"])
    return {"removed": removed}


def move_price(bps: int, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Move the market price (positive: SOL dearer, against the USDC -> SOL copies)."""
    target = resolve(configuration)
    marks.fault(target, "ONCHAIN_FAILURE")
    return chain_admin(target, "POST", "/price", {"bps": int(bps)})


def price_swings(bps: int = 250, period_s: float = 0.3, duration_s: float = 10.0,
                 configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Other traders moving the price up and back every ``period_s`` for ``duration_s`` (slippage;
    times the run's ``trade_scale``, to span the scaled load)."""
    target = resolve(configuration)
    marks.fault(target, "ONCHAIN_FAILURE")
    swings = 0
    deadline = time.monotonic() + float(duration_s) * trade_scale(configuration)
    while time.monotonic() < deadline:
        chain_admin(target, "POST", "/price", {"bps": int(bps)})
        time.sleep(float(period_s))
        chain_admin(target, "POST", "/price", {"bps": round((10_000 / (10_000 + int(bps)) - 1) * 10_000)})
        time.sleep(float(period_s))
        swings += 1
    marks.write(target, "cleared")
    return {"swings": swings}


# -- ledger faults ----------------------------------------------------------------------------------

def _terminate_sessions(target: Target, application_name: str | None = None) -> int:
    """pg_terminate_backend on every other session of the ledger database, or only on those with
    ``application_name``; returns how many were ended."""
    only = "" if application_name is None else "AND application_name = %(name)s"
    try:
        with connect_ledger(target.ledger_dsn) as conn:
            rows = conn.execute(f"""SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                                     WHERE datname = current_database() AND pid <> pg_backend_pid() {only}""",
                                {"name": application_name}).fetchall()
    except psycopg.errors.InsufficientPrivilege:
        # The chart's HA ledger: the probes' login is the operator's (the tables' owner, not a
        # superuser, rightly not allowed to signal the executors' logins). End them as the
        # superuser inside the primary's pod, as the faults there are injected.
        from xorj.chaos.ledger_failover import terminate_on_primary

        return terminate_on_primary(target, application_name)
    return sum(1 for (ok,) in rows if ok)


def terminate_ledger_backends(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """pg_terminate_backend on every other session of the ledger database (the executors' pools)."""
    target = resolve(configuration)
    terminated = _terminate_sessions(target)
    marks.fault(target, "LEDGER_UNAVAILABLE")
    return {"terminated": terminated}


def _postgres_server(target: Target):
    from xorj.devenv.postgres import PostgresServer

    state = target.state
    if "postgres" in state:  # xorj chaos env
        pg = state["postgres"]
        return PostgresServer(Path(pg["data_dir"]), pg["port"], log_path=Path(pg["log"]))
    if state.get("postgres_root"):  # xorj dev up
        root = Path(state["postgres_root"])
        return PostgresServer(root / "data", state.get("postgres_port"), log_path=root / "postgres.log")
    raise InvalidInputError("restart_postgres: the target has no local Postgres server (XORJ_CHAOS_ENV not set)")


def postgres_control(operation: str, data_dir: str, port: int, log: str) -> None:
    """Start/stop/kill the server from a short-lived helper process: the postmaster must not be a child
    of a long-lived process (a chaos run, the runner), or once stopped it stays a zombie that the
    next stop waits for in vain."""
    import subprocess
    import sys

    code = ("import sys; from pathlib import Path; from xorj.devenv.postgres import PostgresServer; "
            "s = PostgresServer(Path(sys.argv[1]), int(sys.argv[2]), log_path=Path(sys.argv[3])); "
            f"s.{operation}()")
    result = subprocess.run([sys.executable, "-c", code, data_dir, str(port), log], capture_output=True, text=True,
                            timeout=120, check=False)
    if result.returncode != 0:
        raise EnvironmentSetupError(f"postgres {operation} failed: {result.stderr.strip()[-1000:]}")


def restart_postgres(down_seconds: float = 3.0, mode: str = "stop",
                     configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Stop Postgres (``mode=stop``: fast shutdown; ``kill``: SIGKILL, crash recovery), keep it down
    ``down_seconds``, start it again on the same port."""
    if mode not in ("stop", "kill"):
        raise InvalidInputError(f"restart_postgres.mode must be 'stop' or 'kill', got {mode!r}")
    target = resolve(configuration)
    server = _postgres_server(target)
    args = (str(server.data_dir), int(server.port), str(server.log_path))
    marks.fault(target, "LEDGER_UNAVAILABLE")
    started = time.monotonic()
    postgres_control(mode, *args)
    time.sleep(float(down_seconds))
    postgres_control("start", *args)
    marks.write(target, "cleared")
    return {"restarted": True, "mode": mode, "down_s": round(time.monotonic() - started, 1)}


def _proxy_url(target: Target) -> str:
    proxy = target.state.get("proxy")
    if not proxy:
        raise InvalidInputError("ledger path cut: the target has no TCP proxy (local chaos environment only; "
                                "on a cluster use cut_ledger_egress, the NetworkPolicy form)")
    return proxy["control_url"]


def cut_ledger_path(mode: str = "reset", configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Partition the executors from Postgres at the proxy (``reset``: refused; ``blackhole``: silent)."""
    target = resolve(configuration)
    state = _http(_proxy_url(target) + "/cut", "POST", {"mode": mode})
    marks.fault(target, "LEDGER_UNAVAILABLE")
    return state


def restore_ledger_path(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    target = resolve(configuration)
    state = _http(_proxy_url(target) + "/restore", "POST", {})
    marks.write(target, "cleared")
    return state


def _networking(target: Target):
    from kubernetes import client, config

    config.load_kube_config(config_file=target.kubeconfig)
    return client.NetworkingV1Api()


def _cut_policies(target: Target) -> tuple[Path, dict[str, Any]]:
    """Where :func:`cut_ledger_egress` keeps the specs it narrowed, and those specs."""
    path = target.state_dir / "ledger-cut-policies.json"
    return path, json.loads(path.read_text()) if path.exists() else {}


def _executor_ledger_peer(target: Target) -> tuple[list[int], list[str], str]:
    """The ledger's ports and addresses as the executor pods' packets carry them (see
    :mod:`xorj.chaos.netpol`): their Deployment's ledger DSN (the Secret it reads), and the Service that
    DSN names, through its EndpointSlices. Returns them and the DSN's host, for the journal."""
    import base64

    from kubernetes import client, config

    from xorj.chaos import netpol
    from xorj.controller.tradingstrategy.desired import EXECUTOR_CONTAINER
    from xorj.executor.settings import executor_variable

    namespace = target.require("namespace")
    config.load_kube_config(config_file=target.kubeconfig)
    core = client.CoreV1Api()
    deployment = client.AppsV1Api().read_namespaced_deployment(f"{target.require('strategy_name')}-executor", namespace)
    (container,) = [c for c in deployment.spec.template.spec.containers if c.name == EXECUTOR_CONTAINER]
    (variable,) = [e for e in container.env or [] if e.name == executor_variable("ledger_dsn")]
    if variable.value_from is None or variable.value_from.secret_key_ref is None:
        dsn = variable.value or ""
    else:
        ref = variable.value_from.secret_key_ref
        data = core.read_namespaced_secret(ref.name, namespace).data or {}
        dsn = base64.b64decode(data[ref.key]).decode()
    where = netpol.dsn_target(dsn, namespace)
    service, slices = None, []
    if where.service is not None:
        service = core.api_client.sanitize_for_serialization(
            core.read_namespaced_service(where.service, where.namespace))
        slices = core.api_client.sanitize_for_serialization(client.DiscoveryV1Api().list_namespaced_endpoint_slice(
            where.namespace, label_selector=f"kubernetes.io/service-name={where.service}").items)
    ports, addresses = netpol.ledger_peer(where, service, slices)
    return ports, addresses, f"{where.host}:{where.port}"


def cut_ledger_egress(ledger_port: int | None = None, ledger_ip: str | None = None, settle_seconds: float = 30.0,
                      configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Partition the executor pods from Postgres with NetworkPolicy (on a cluster whose network plugin
    enforces it: kind, or the local real node's kube-router), then end their ledger sessions, which
    the policy cannot (established connections pass). Every policy that lets executors reach the
    ledger's port is narrowed; if none limits their egress, a policy allowing all but the ledger's
    addresses is added. The port and addresses are those the executors' packets carry: by default
    found from the executors' own ledger DSN and the Service it names (the chart's HA ledger: its
    primary Service's member, port 5432; not the port of the DSN the probes use, which on `xorj dev
    up --ledger ha` is a relay's on the host); ``ledger_port`` / ``ledger_ip`` override them. Fails
    unless the executors stay without a ledger session (the cut is real) within ``settle_seconds``.
    :func:`restore_ledger_egress` undoes it."""
    from xorj.chaos import netpol
    from xorj.controller.tradingstrategy.desired import labels
    from xorj.executor.service import LEDGER_APPLICATION_NAME

    target = resolve(configuration)
    namespace = target.require("namespace")
    ports, addresses, via = _executor_ledger_peer(target)
    if ledger_port:
        ports = [int(ledger_port)]
    if ledger_ip:
        addresses = [ledger_ip]
    api = _networking(target)
    executor_labels = labels(target.require("strategy_name"))
    saved_path, saved = _cut_policies(target)
    narrowed = []
    for policy in api.list_namespaced_network_policy(namespace).items:
        spec = api.api_client.sanitize_for_serialization(policy.spec)
        name = policy.metadata.name
        if name == netpol.CHAOS_POLICY_NAME or not netpol.limits_egress(spec):
            continue
        if not netpol.selects(spec.get("podSelector") or {}, executor_labels):
            continue
        saved.setdefault(name, spec)  # the original, kept across a repeated cut
        cut = spec
        for port in ports:
            cut = netpol.without_ledger(cut, port)
        api.patch_namespaced_network_policy(name, namespace, {"spec": cut})
        narrowed.append(name)
    saved_path.write_text(json.dumps(saved))
    added = None
    if not narrowed:
        if not addresses:
            raise InvalidInputError("cut_ledger_egress: no NetworkPolicy limits the executors' egress and the "
                                    f"ledger's address behind {via} is unknown; give ledger_ip (the ledger's address "
                                    "as the pods reach it) to add one")
        policy = netpol.cut_policy(executor_labels, addresses)
        api.create_namespaced_network_policy(namespace, policy)
        added = policy["metadata"]["name"]
    marks.fault(target, "LEDGER_UNAVAILABLE")
    # The policy holds new connections back; end the open ones until none comes back.
    started = time.monotonic()
    terminated, quiet_since = 0, None
    while True:
        sessions = _terminate_sessions(target, LEDGER_APPLICATION_NAME)
        terminated += sessions
        now = time.monotonic()
        if sessions:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= 3.0:
            break
        if now - started > float(settle_seconds):
            raise EnvironmentSetupError(
                f"cut_ledger_egress: executors still reach the ledger {settle_seconds:.0f}s after the cut "
                f"(policies narrowed: {narrowed or '-'}, added: {added or '-'}); is a NetworkPolicy agent enforcing?")
        time.sleep(0.5)
    return {"narrowed": narrowed, "added": added, "ledger_port": ports[0], "ledger_ports": ports,
            "ledger_addresses": addresses, "executors_dsn_host": via, "sessions_ended": terminated,
            "cut_held_after_s": round(time.monotonic() - started, 1)}


def restore_ledger_egress(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Put back the policies :func:`cut_ledger_egress` narrowed and remove the one it added (idempotent)."""
    from kubernetes.client.exceptions import ApiException

    from xorj.chaos import netpol

    target = resolve(configuration)
    namespace = target.require("namespace")
    api = _networking(target)
    saved_path, saved = _cut_policies(target)
    for name, spec in saved.items():
        # a JSON merge patch cannot empty a list it does not name: replace the egress rules whole
        api.patch_namespaced_network_policy(name, namespace, [{"op": "replace", "path": "/spec", "value": spec}])
    try:
        api.delete_namespaced_network_policy(netpol.CHAOS_POLICY_NAME, namespace)
        removed = True
    except ApiException as exc:
        if exc.status != 404:
            raise
        removed = False
    saved_path.unlink(missing_ok=True)
    marks.write(target, "cleared")
    return {"restored": sorted(saved), "removed_added_policy": removed}


# -- processes --------------------------------------------------------------------------------------

def executor_pids(target: Target) -> dict[str, int]:
    path = target.state.get("executors_file")
    if not path:
        raise InvalidInputError("kill_executors: no local executor pool (on a cluster use chaosk8s terminate_pods)")
    try:
        return dict(json.loads(Path(path).read_text())["executors"])
    except (OSError, ValueError, KeyError) as exc:
        raise EnvironmentSetupError(f"executor pool state {path} unreadable: {exc}") from None


def kill_executors(count: int = 1, sig: str = "SIGKILL", configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Kill ``count`` executor processes (SIGKILL: no clean-up, in-flight trades mid-way)."""
    target = resolve(configuration)
    pids = executor_pids(target)
    chosen = random.sample(sorted(pids.items()), min(int(count), len(pids)))
    signum = getattr(signal, sig)
    for _, pid in chosen:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
    marks.write(target, "fault:last")
    return {"killed": [name for name, _ in chosen], "signal": sig}


def set_kill_switch(paused: bool = True, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """The strategy's kill switch. Cluster: patch TradingStrategy spec.paused (the operator rolls the
    executors). Local: the pool's settings override, then a rolling SIGTERM of the executors."""
    target = resolve(configuration)
    if paused:
        marks.write(target, "paused")
        marks.fault(target, "KILL_SWITCH")
    else:
        marks.write(target, "unpaused")
    if "executors_file" not in target.state:
        api = _custom_objects(target)
        api.patch_namespaced_custom_object("trading.xorj.io", "v1alpha1", target.require("namespace"),
                                           "tradingstrategies", target.require("strategy_name"),
                                           {"spec": {"paused": bool(paused)}})
        if not paused:
            marks.write(target, "cleared")
        return {"paused": bool(paused), "via": "TradingStrategy"}
    overrides = Path(target.env_file.parent / "executor.env.json")  # type: ignore[union-attr]
    overrides.write_text(json.dumps({"XORJ_PAUSED": "true" if paused else "false"}))
    for pid in executor_pids(target).values():
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    if not paused:
        marks.write(target, "cleared")
    return {"paused": bool(paused), "via": "executor settings"}


OPERATOR_KILLED_FILE = "operator-killed.json"  # in the run's state directory: the pods kill_operator deleted


def kill_operator(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Kill the operator of ``xorj dev up`` (demo.json): delete its pod at once (no grace period) when it
    runs as the chart's Deployment, the default on the real node, as chaostoolkit-kubernetes'
    terminate_pods would (its controller starts another); SIGKILL it when it runs as a host process
    (``--operator process``, or executor processes without a node)."""
    target = resolve(configuration)
    if target.state.get("operator_mode") == "pod":
        from kubernetes import client, config

        from xorj.devenv.demo import OPERATOR_POD_SELECTOR

        config.load_kube_config(config_file=target.kubeconfig)
        core = client.CoreV1Api()
        namespace = target.require("namespace")
        pods = [p.metadata.name for p in core.list_namespaced_pod(namespace, label_selector=OPERATOR_POD_SELECTOR).items
                if p.metadata.deletion_timestamp is None]
        if not pods:
            raise InvalidInputError(f"kill_operator: no operator pod ({OPERATOR_POD_SELECTOR}) in namespace {namespace}")
        for name in pods:
            core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
        marks.write(target, "fault:last")
        # start_operator waits for a pod other than these, and reports how long the Deployment took
        (target.state_dir / OPERATOR_KILLED_FILE).write_text(json.dumps({"pods": pods, "at": time.time()}))
        return {"deleted": pods}
    record = target.state.get("processes", {}).get("operator")
    if not record:
        raise InvalidInputError("kill_operator: no local operator process in XORJ_CHAOS_ENV (demo.json)")
    try:
        os.killpg(int(record["pid"]), signal.SIGKILL)
    except ProcessLookupError:
        pass
    marks.write(target, "fault:last")
    return {"killed": int(record["pid"])}


def start_operator(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """The demo's operator back: wait for the pod its Deployment's controller started in place of the
    one kill_operator deleted (operator pod), or start the host process again with its settings (what
    the controller does for a killed pod)."""
    from xorj.devenv.demo import Demo

    target = resolve(configuration)
    root = target.env_file.parent  # type: ignore[union-attr]
    namespace = target.require("namespace")
    if target.state.get("operator_mode") == "pod":
        killed: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            killed = json.loads((target.state_dir / OPERATOR_KILLED_FILE).read_text())
            # read once: the rollback's start_operator, or a later run's, must not time this kill again
            (target.state_dir / OPERATOR_KILLED_FILE).unlink()
        demo = Demo(root=root, namespace=namespace, executors="pods", operator="pod")
        pod = demo.wait_operator_pod(other_than=killed.get("pods") or ())
        marks.write(target, "cleared")
        out: dict[str, Any] = {"ready": pod}
        if killed:
            out.update(replaced=killed["pods"], ready_after_s=round(time.time() - float(killed["at"]), 1))
        return out
    executors = target.state.get("executor_mode") or ("processes" if "pod-runtime" in target.state.get("processes", {})
                                                      else "pods")
    demo = Demo(root=root, namespace=namespace, executors=executors, operator="process")
    pid = demo.restart_operator(target.ledger_dsn)
    marks.write(target, "cleared")
    return {"started": pid}


def restart_kube_apiserver(down_seconds: float = 5.0, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Restart the local cluster's kube-apiserver: SIGTERM (SIGKILL after 20 s), keep it down
    ``down_seconds``, then `kwokctl start cluster`, which starts it again with its own configuration
    and also every control-plane component that exited meanwhile: kube-controller-manager and
    kube-scheduler exit when they lose their leader lease to an API-server outage, and on a real node
    the kubelet restarts them (static pods). On kind: `docker restart <cluster>-control-plane`."""
    from xorj.devenv.cluster import LocalCluster
    from xorj.devenv.processes import process_running, terminate

    target = resolve(configuration)
    cluster = LocalCluster()
    pid = cluster.pids().get("kube-apiserver")
    if not pid or not process_running(pid):
        raise EnvironmentSetupError(f"no running kube-apiserver recorded for cluster {cluster.name}")
    started = time.monotonic()
    terminate(pid, grace=20, poll=0.2)
    marks.write(target, "fault:last")
    time.sleep(float(down_seconds))
    restarts: list[str] = []

    def start_stopped() -> None:
        stopped = sorted(name for name, p in cluster.pids().items() if not process_running(p))
        if stopped:
            result = cluster.kwokctl("start", "cluster", timeout=120)
            if result.returncode != 0:
                raise EnvironmentSetupError(f"kwokctl start cluster failed: {result.stderr.strip()[-500:]}")
            restarts.extend(stopped)

    start_stopped()
    deadline = time.monotonic() + 90
    while cluster.kubectl("get", "--raw", "/readyz", check=False, timeout=10).stdout.strip() != "ok":
        if time.monotonic() > deadline:
            raise EnvironmentSetupError("kube-apiserver not ready 90 s after its restart")
        time.sleep(1)
    ready_after = round(time.monotonic() - started, 1)
    # components that lose their lease exit a little after the outage: keep them running for a while
    settle = time.monotonic() + 20
    while time.monotonic() < settle:
        start_stopped()
        time.sleep(2)
    marks.write(target, "cleared")
    return {"restarted": True, "ready_after_s": ready_after, "action_s": round(time.monotonic() - started, 1),
            "components_restarted": restarts}


def _custom_objects(target: Target):
    from kubernetes import client, config

    config.load_kube_config(config_file=target.kubeconfig)
    return client.CustomObjectsApi()
