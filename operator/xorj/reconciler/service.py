"""One reconciliation pass over vaults: the I/O around :mod:`xorj.domain.reconciliation`.

Per vault:

1. walk its signatures newest first back to its cursor (``getSignaturesForAddress`` pages of up to
   1000, ``before`` = the last signature of the previous page, ``until`` = the cursor);
2. THEN read the ledger's attempts for them: an executor commits an attempt before its first send, so
   any transaction on chain already has its attempt row by the time it is listed;
3. for each signature with no attempt, fetch the transaction and verify its signatures, to tell a
   transaction the vault signed from one that only touches it (a transfer in);
4. judge (pure), record the findings once each, and move the cursor past what is settled;
5. check the vault's CONFIRMED trades not yet seen final with ``getSignatureStatuses``.

The RPC's answers are checked (:meth:`xorj.chain.rpc.SolanaRpc.signatures_for_address`,
:meth:`~xorj.chain.rpc.SolanaRpc.transaction`); an answer that does not hold together is an error of
that vault's pass with its reason code, never "nothing found". The cursor then stays where it was.

Every ledger read and write is a transaction body of :mod:`xorj.ledger.chain_reconciliation`, run on
an :class:`~xorj.ledger.aio.AsyncLedger` on the pass's own event loop (no thread hop).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from solders.pubkey import Pubkey
from solders.signature import Signature

from xorj.chain.errors import ChainCallError, MalformedAnswerError
from xorj.chain.rpc import SolanaRpc
from xorj.domain.reconciliation import (
    ChainSignature,
    FinalityGrace,
    FinalityVerdict,
    Finding,
    ObservedStatus,
    classify_confirmed,
    classify_vault,
    needs_signer_check,
)
from xorj.domain.trades import ReasonCode
from xorj.errors import LedgerUnavailableError
from xorj.ledger import chain_reconciliation as reconciliation
from xorj.ledger.aio import AsyncLedger
from xorj.ledger.chain_reconciliation import StoredFinding

log = logging.getLogger(__name__)

MAX_STATUSES_PER_CALL = 256  # getSignatureStatuses' limit


@dataclass(frozen=True)
class ReconcileSettings:
    grace: FinalityGrace = field(default_factory=FinalityGrace)
    # A vault's history is judged from its first trade's admission less this margin (block times are
    # the validators' estimate: a few seconds off).
    baseline_margin_seconds: float = 60.0
    page_limit: int = 1000
    # A walk longer than this without reaching the cursor is an error (a node without the cursor's
    # history answers with everything): raise it for a vault that really trades that much per pass.
    max_signatures_per_vault: int = 100_000

    def __post_init__(self) -> None:
        if not 1 <= self.page_limit <= 1000:
            raise ValueError(f"page_limit: must be 1..1000, got {self.page_limit}")
        if self.max_signatures_per_vault < self.page_limit:
            raise ValueError("max_signatures_per_vault: must be at least page_limit")
        if self.baseline_margin_seconds < 0:
            raise ValueError("baseline_margin_seconds: must be >= 0")


@dataclass
class VaultReport:
    vault: str
    walked: int = 0
    new_findings: list[StoredFinding] = field(default_factory=list)
    cursor_before: str | None = None
    cursor_after: str | None = None
    unsettled: int = 0
    inbound_ignored: int = 0
    confirmed_checked: int = 0
    confirmed_final: int = 0
    errors: list[tuple[ReasonCode, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"vault": self.vault, "walked": self.walked, "cursorBefore": self.cursor_before,
                "cursorAfter": self.cursor_after, "unsettled": self.unsettled,
                "inboundIgnored": self.inbound_ignored, "confirmedChecked": self.confirmed_checked,
                "confirmedFinal": self.confirmed_final,
                "newFindings": [f.to_json() for f in self.new_findings],
                "errors": [{"reason": r.value, "message": m} for r, m in self.errors]}


@dataclass
class PassReport:
    vaults: list[VaultReport]
    open_findings: list[StoredFinding]
    duration_seconds: float

    @property
    def errors(self) -> list[tuple[str, ReasonCode, str]]:
        return [(v.vault, reason, message) for v in self.vaults for reason, message in v.errors]

    @property
    def new_findings(self) -> list[StoredFinding]:
        return [f for v in self.vaults for f in v.new_findings]

    def to_json(self) -> dict[str, object]:
        return {"vaults": [v.to_json() for v in self.vaults],
                "openFindings": [f.to_json() for f in self.open_findings],
                "newFindings": len(self.new_findings), "errors": len(self.errors),
                "durationSeconds": round(self.duration_seconds, 3)}


async def walk_since(rpc: SolanaRpc, vault: str, cursor: str | None, *, page_limit: int, max_signatures: int,
                     not_before: int | None) -> list[ChainSignature]:
    """The vault's signatures newer than ``cursor``, newest first, across pages. Without a cursor the
    walk also stops at the first page reaching back past ``not_before`` (older ones are not judged)."""
    address = Pubkey.from_string(vault)
    out: list[ChainSignature] = []
    seen: set[str] = set()
    before: str | None = None
    while True:
        page = await rpc.signatures_for_address(address, before=before, until=cursor, limit=page_limit)
        if out and page and page[0].slot > out[-1].slot:
            raise MalformedAnswerError(f"getSignaturesForAddress: page after {before} starts at slot {page[0].slot}, "
                                       f"newer than the previous page's last slot {out[-1].slot}",
                                       method="getSignaturesForAddress")
        for entry in page:
            if entry.signature in seen:
                raise MalformedAnswerError(f"getSignaturesForAddress: {entry.signature} on two pages",
                                           method="getSignaturesForAddress")
            seen.add(entry.signature)
        out.extend(page)
        if len(page) < page_limit:
            return out  # reached the cursor (or the start of the history)
        oldest = page[-1]
        if cursor is None and not_before is not None and oldest.block_time is not None \
                and oldest.block_time < not_before:
            return out
        if len(out) >= max_signatures:
            raise MalformedAnswerError(f"getSignaturesForAddress: {len(out)} signatures walked without reaching the "
                                       f"cursor {cursor} (limit {max_signatures}): does the node have the vault's "
                                       "history?", method="getSignaturesForAddress")
        before = oldest.signature


async def signed_by_vault(rpc: SolanaRpc, vault: str, signatures: Sequence[str],
                          errors: list[tuple[ReasonCode, str]], *, concurrency: int = 8) -> dict[str, bool]:
    """For each signature, whether the vault is one of the transaction's verified signers (up to
    ``concurrency`` getTransaction calls at a time). A transaction the node cannot produce is left out
    (unsettled) and recorded in ``errors``."""
    key = Pubkey.from_string(vault)
    gate = asyncio.Semaphore(concurrency)

    async def check(signature: str) -> tuple[str, bool | None, tuple[ReasonCode, str] | None]:
        async with gate:
            try:
                tx = await rpc.transaction(signature)
            except ChainCallError as exc:
                return signature, None, (exc.reason, str(exc))
        if tx is None:
            return signature, None, (ReasonCode.MALFORMED_RESPONSE,
                                     f"getTransaction: {signature} was listed by getSignaturesForAddress but the "
                                     "node does not return it")
        signers = tx.message.account_keys[:tx.message.header.num_required_signatures]
        return signature, key in signers, None

    out: dict[str, bool] = {}
    for signature, signed, error in await asyncio.gather(*(check(s) for s in signatures)):
        if error is not None:
            errors.append(error)
        elif signed is not None:
            out[signature] = signed
    return out


async def reconcile_vault(ledger: AsyncLedger, rpc: SolanaRpc, vault: str,
                          settings: ReconcileSettings) -> VaultReport:
    report = VaultReport(vault)
    # Each half runs even when the other failed: an error is that half's finding, never a clean pass.
    for half in (_reconcile_walk, _reconcile_confirmed):
        try:
            await half(ledger, rpc, vault, settings, report)
        except ChainCallError as exc:
            report.errors.append((exc.reason, str(exc)))
        except LedgerUnavailableError as exc:
            report.errors.append((ReasonCode.LEDGER_UNAVAILABLE, str(exc)))
    return report


async def _reconcile_walk(ledger: AsyncLedger, rpc: SolanaRpc, vault: str, settings: ReconcileSettings,
                          report: VaultReport) -> None:
    cursor = await ledger.run(reconciliation.cursor(
        vault, baseline_margin=timedelta(seconds=settings.baseline_margin_seconds)))
    report.cursor_before = report.cursor_after = cursor.signature
    not_before = int(cursor.not_before.timestamp())
    chain = await walk_since(rpc, vault, cursor.signature, page_limit=settings.page_limit,
                             max_signatures=settings.max_signatures_per_vault, not_before=not_before)
    report.walked = len(chain)
    # after the walk: every transaction listed has had its attempt committed before it was sent
    attempts = await ledger.run(reconciliation.attempts_for([c.signature for c in chain]))
    unmatched = needs_signer_check(chain, attempts, vault, not_before_block_time=not_before)
    signed = await signed_by_vault(rpc, vault, unmatched, report.errors)
    verdict = classify_vault(vault, chain, attempts, signed, not_before_block_time=not_before)
    report.unsettled, report.inbound_ignored = verdict.unsettled, verdict.ignored_inbound
    report.new_findings.extend(await _record(ledger, verdict.findings))
    if verdict.new_cursor is not None and verdict.new_cursor != cursor.signature:
        if await ledger.run(reconciliation.advance_cursor(vault, cursor.signature, verdict.new_cursor)):
            report.cursor_after = verdict.new_cursor
    else:
        await ledger.run(reconciliation.mark_walked(vault))


async def _reconcile_confirmed(ledger: AsyncLedger, rpc: SolanaRpc, vault: str, settings: ReconcileSettings,
                               report: VaultReport) -> None:
    trades = await ledger.run(reconciliation.unverified_confirmed(vault))
    for start in range(0, len(trades), MAX_STATUSES_PER_CALL):
        batch = trades[start:start + MAX_STATUSES_PER_CALL]
        answer = await rpc.signature_statuses([Signature.from_string(t.final_signature) for t in batch])
        findings: list[Finding] = []
        for trade, status in zip(batch, answer.statuses, strict=True):
            observed = None if status is None else ObservedStatus(
                slot=status.slot, confirmation=status.confirmation, failed=status.failure is not None,
                error=None if status.failure is None else status.failure.describe())
            check = classify_confirmed(trade, observed, answer.context_slot, settings.grace)
            report.confirmed_checked += 1
            if check.verdict is FinalityVerdict.FINAL:
                report.confirmed_final += 1
                await ledger.run(reconciliation.mark_verified(trade.trade_id, trade.final_signature, status.slot))
            elif check.finding is not None:
                findings.append(check.finding)
        report.new_findings.extend(await _record(ledger, findings))


async def _record(ledger: AsyncLedger, findings: Sequence[Finding]) -> list[StoredFinding]:
    if not findings:
        return []
    created = await ledger.run(reconciliation.record_findings(findings))
    for f in created:
        log.warning("chain reconciliation finding", extra={
            "finding": f.finding_id, "class": f.finding_class.value, "vault": f.vault, "signature": f.signature,
            "trade_id": f.trade_id, "detail": f.detail})
    return created


async def reconcile_pass(ledger: AsyncLedger, rpc: SolanaRpc, settings: ReconcileSettings,
                         vaults: Sequence[str] | None = None) -> PassReport:
    """One pass over ``vaults`` (default: every vault the ledger has a trade for), one after another."""
    started = time.monotonic()
    if vaults is None:
        vaults = await ledger.run(reconciliation.vaults())
    reports = []
    for vault in vaults:
        try:
            Pubkey.from_string(vault)
        except ValueError:
            reports.append(VaultReport(vault, errors=[(ReasonCode.MALFORMED_RESPONSE,
                                                       f"vault {vault!r} is not a base-58 public key")]))
            continue
        reports.append(await reconcile_vault(ledger, rpc, vault, settings))
    open_findings = await ledger.run(reconciliation.findings(vaults=list(vaults)))
    return PassReport(reports, open_findings, time.monotonic() - started)
