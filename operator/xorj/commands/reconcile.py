"""``xorj reconcile``: one reconciliation pass of the ledger with the chain, for a person or a job."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import click

EXIT_FINDINGS = 1  # open findings for the vaults covered (bit 0)
EXIT_ERRORS = 2  # a vault could not be (fully) reconciled (bit 1)


@click.command("reconcile")
@click.option("--vault", "vaults", multiple=True, help="Reconcile only this vault (repeatable). Default: every "
              "vault the ledger has a trade for.")
@click.option("--rpc-url", envvar=["XORJ_RECONCILE_RPC_URL", "XORJ_RPC_URL"], default=None,
              help="Solana JSON-RPC endpoint to read the chain from (env XORJ_RECONCILE_RPC_URL, else XORJ_RPC_URL).")
@click.option("--json", "as_json", is_flag=True, help="Print the pass as one JSON document.")
@click.option("--grace-seconds", type=click.FloatRange(min=0), default=120.0, show_default=True,
              help="A CONFIRMED trade's transaction may be short of finalized this long after confirmation.")
@click.option("--grace-slots", type=click.IntRange(min=0), default=150, show_default=True,
              help="... or this many slots behind the status answer's slot.")
@click.option("--baseline-margin-seconds", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="A new vault's history is judged from its first trade's admission less this margin.")
@click.option("--resolve", "resolve_id", type=int, default=None,
              help="Close finding ID after looking into it (with --note); no pass is run.")
@click.option("--note", default=None, help="What was found, kept with the resolved finding.")
@click.option("--rpc-timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True)
def reconcile(vaults: tuple[str, ...], rpc_url: str | None, as_json: bool, grace_seconds: float, grace_slots: int,
              baseline_margin_seconds: float, resolve_id: int | None, note: str | None, rpc_timeout: float) -> None:
    """Walk each vault's on-chain transactions since its cursor, map them to the ledger's attempts by
    signature, and report: transactions the vault signed with no attempt (UNKNOWN_TRANSACTION),
    attempts recorded as not landed that landed (UNRECORDED_LANDING), and CONFIRMED trades whose
    transaction is not final on chain (CONFIRMED_NOT_FINAL).

    The ledger is XORJ_LEDGER_DSN (its owner's login: the reconciler's tables are not the
    executors'). Exit code: 0 nothing open, 1 open findings for the vaults covered, 2 a vault could
    not be reconciled (RPC or ledger error), 3 both.
    """
    from xorj.errors import XorjError

    dsn = os.environ.get("XORJ_LEDGER_DSN")
    if not dsn:
        raise click.ClickException("XORJ_LEDGER_DSN is not set: the reconciler needs the ledger's DSN")
    try:
        code = _run(dsn, vaults, rpc_url, as_json, grace_seconds, grace_slots, baseline_margin_seconds,
                    resolve_id, note, rpc_timeout)
    except XorjError as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)


def _run(dsn: str, vaults: tuple[str, ...], rpc_url: str | None, as_json: bool, grace_seconds: float,
         grace_slots: int, baseline_margin_seconds: float, resolve_id: int | None, note: str | None,
         rpc_timeout: float) -> int:
    from xorj.chain.rpc import RpcTimeouts, SolanaRpc
    from xorj.domain.reconciliation import FinalityGrace
    from xorj.ledger.aio import AsyncLedger
    from xorj.ledger.chain_reconciliation import ReconciliationStore
    from xorj.ledger.repository import Ledger
    from xorj.reconciler.service import ReconcileSettings, reconcile_pass

    with Ledger.connect(dsn, apply_migrations=False, max_size=2, name="xorj-reconcile") as ledger:
        store = ReconciliationStore(ledger)
        if resolve_id is not None:
            resolved = store.resolve(resolve_id, note or "", actor=os.environ.get("USER") or "xorj reconcile")
            click.echo(json.dumps(resolved.to_json()) if as_json else
                       f"finding {resolved.finding_id} resolved: {resolved.resolution}")
            return 0
        if not rpc_url:
            raise click.ClickException("--rpc-url (or XORJ_RECONCILE_RPC_URL / XORJ_RPC_URL) is required")
        settings = ReconcileSettings(grace=FinalityGrace(seconds=grace_seconds, slots=grace_slots),
                                     baseline_margin_seconds=baseline_margin_seconds)

        async def main():  # type: ignore[no-untyped-def]
            # the pass runs its ledger transactions on this loop (xorj.ledger.aio), no thread hop
            async with AsyncLedger.for_dsn(dsn, max_size=2, name="xorj-reconcile") as on_loop, \
                    SolanaRpc(rpc_url, timeouts=RpcTimeouts(read=rpc_timeout, send=rpc_timeout)) as rpc:
                return await reconcile_pass(on_loop, rpc, settings, list(vaults) or None)

        report = asyncio.run(main())
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        new_ids = {f.finding_id for f in report.new_findings}
        for f in report.open_findings:
            marker = "NEW " if f.finding_id in new_ids else ""
            trade = f" trade={f.trade_id}" if f.trade_id is not None else ""
            click.echo(f"{marker}{f.finding_class.value} #{f.finding_id} vault={f.vault} signature={f.signature}"
                       f"{trade}: {f.detail}")
        for vault, reason, message in report.errors:
            click.echo(f"ERROR {reason.value} vault={vault}: {message}", err=True)
        walked = sum(v.walked for v in report.vaults)
        click.echo(f"{len(report.vaults)} vault(s), {walked} transaction(s) walked, "
                   f"{len(report.new_findings)} new finding(s), {len(report.open_findings)} open, "
                   f"{len(report.errors)} error(s)")
    return (EXIT_FINDINGS if report.open_findings else 0) | (EXIT_ERRORS if report.errors else 0)
