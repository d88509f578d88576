"""Reconciliation of the ledger with the chain (pure, no I/O): which of a vault's on-chain
transactions, and which of the ledger's CONFIRMED trades, disagree with each other.

The ledger maps the chain back to trades by the signatures of the attempts it stored before each
first send (write-ahead): no memo is put on transactions (it would tell front-runners that a copy is
coming; ``docs/design.md``). A vault's transactions are walked newest first back to a per-vault
cursor (``getSignaturesForAddress``), each one is looked up among the stored attempts, and three
classes of finding come out:

- ``UNKNOWN_TRANSACTION``: the vault signed a transaction the ledger has no attempt for: its key was
  used outside the executor (a stolen key) or an executor sent bytes it never recorded (a bug).
  Transactions that merely touch the vault (a transfer INTO it) are not findings: only those the
  vault signed count, which the adapter establishes from the transaction itself.
- ``UNRECORDED_LANDING``: an attempt the ledger holds as not landed (EXPIRED, NOT_SENT) landed, or one
  held as FAILED_ON_CHAIN landed without an error (a fill the ledger thinks failed). This is how a
  double fill shows up: the executor re-signed after an expiry verdict that was wrong.
- ``CONFIRMED_NOT_FINAL``: a CONFIRMED trade whose final transaction is missing, not finalized, or
  failed on chain past a grace window.

The cursor only moves past transactions that are settled: finalized on chain (a confirmed block can
still be dropped by a fork, and its transactions would be skipped) and, when an attempt maps to one,
with the attempt's fate already written (a PENDING attempt may yet be recorded EXPIRED by a buggy
executor: that must still be caught), and, for a transaction with no attempt, with its signers known.
It stops at the oldest unsettled transaction, so everything newer is walked again next time;
findings carry a key that makes reporting them again a no-op.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from xorj.domain.trades import AttemptOutcome, TradeState

COMMITMENT_RANK = {"processed": 0, "confirmed": 1, "finalized": 2}


class FindingClass(str, enum.Enum):
    UNKNOWN_TRANSACTION = "UNKNOWN_TRANSACTION"
    UNRECORDED_LANDING = "UNRECORDED_LANDING"
    CONFIRMED_NOT_FINAL = "CONFIRMED_NOT_FINAL"

    @property
    def metric_label(self) -> str:
        return self.value.lower()


@dataclass(frozen=True)
class ChainSignature:
    """One entry of ``getSignaturesForAddress``: a transaction that involves the vault."""

    signature: str
    slot: int
    failed: bool  # landed with an error (the fee was still paid)
    confirmation: str  # processed | confirmed | finalized
    block_time: int | None = None  # unix seconds, None when the node does not know it
    error: str | None = None  # the error as the node described it (for the finding's detail)

    def __post_init__(self) -> None:
        if self.confirmation not in COMMITMENT_RANK:
            raise ValueError(f"confirmation: must be one of {sorted(COMMITMENT_RANK)}, got {self.confirmation!r}")
        if self.slot < 0:
            raise ValueError(f"slot: must be >= 0, got {self.slot}")

    @property
    def finalized(self) -> bool:
        return self.confirmation == "finalized"


@dataclass(frozen=True)
class AttemptRecord:
    """What the ledger holds for one attempt's signature (and its trade)."""

    signature: str
    trade_id: int
    attempt_no: int
    vault: str
    outcome: AttemptOutcome
    trade_state: TradeState
    strategy: str = ""


@dataclass(frozen=True)
class Finding:
    """One disagreement between chain and ledger. ``key`` is stable across passes: the ledger stores
    each key once, so walking the same transaction again does not report it twice."""

    finding_class: FindingClass
    vault: str
    signature: str
    detail: str
    trade_id: int | None = None
    slot: int | None = None
    strategy: str | None = None

    @property
    def key(self) -> str:
        return f"{self.finding_class.value}:{self.vault}:{self.signature}"


@dataclass(frozen=True)
class VaultVerdict:
    """The result of one vault's walk: its findings and where its cursor may move to (None: stay)."""

    findings: tuple[Finding, ...]
    new_cursor: str | None
    unsettled: int  # walked transactions that are not settled yet (walked again next pass)
    ignored_inbound: int  # transactions that touch the vault without its signature


def needs_signer_check(chain: Sequence[ChainSignature], attempts: Mapping[str, AttemptRecord],
                       vault: str, *, not_before_block_time: int | None = None) -> list[str]:
    """The walked signatures with no attempt of ``vault`` (and not from before the ledger knew it):
    the adapter must find out whether the vault signed each (from the transaction itself) before
    :func:`classify_vault` can judge them."""
    return [c.signature for c in chain
            if _attempt_of(attempts, c.signature, vault) is None and not _before_ledger(c, not_before_block_time)]


def _before_ledger(entry: ChainSignature, not_before_block_time: int | None) -> bool:
    return (not_before_block_time is not None and entry.block_time is not None
            and entry.block_time < not_before_block_time)


def classify_vault(
    vault: str,
    chain: Sequence[ChainSignature],
    attempts: Mapping[str, AttemptRecord],
    vault_signed: Mapping[str, bool],
    *,
    not_before_block_time: int | None = None,
) -> VaultVerdict:
    """Judge a vault's transactions walked since its cursor.

    ``chain`` is newest first, as ``getSignaturesForAddress`` answers (the cursor itself excluded).
    ``attempts`` maps signatures to the ledger's attempts (any vault's: one of another vault does not
    count for this one). ``vault_signed`` says, for each signature without an attempt, whether the
    vault signed it; a signature missing there is unsettled (it is judged on a later pass).
    ``not_before_block_time``: transactions with an earlier block time predate the ledger's
    knowledge of the vault (its first trade) and are not judged.
    """
    findings: list[Finding] = []
    settled: list[bool] = []
    ignored = 0
    fills_by_trade: dict[int, list[str]] = {}  # successful transactions of each trade in this walk
    for entry in chain:
        attempt = _attempt_of(attempts, entry.signature, vault)
        if attempt is not None and not entry.failed:
            fills_by_trade.setdefault(attempt.trade_id, []).append(entry.signature)
    for entry in chain:
        attempt = _attempt_of(attempts, entry.signature, vault)
        if attempt is not None:
            others = [s for s in fills_by_trade.get(attempt.trade_id, ()) if s != entry.signature]
            finding = _judge_attempt(vault, entry, attempt, others)
            if finding is not None:
                findings.append(finding)
            settled.append(entry.finalized and attempt.outcome is not AttemptOutcome.PENDING)
            continue
        if _before_ledger(entry, not_before_block_time):
            settled.append(entry.finalized)
            continue
        signed = vault_signed.get(entry.signature)
        if signed is None:
            settled.append(False)
            continue
        if signed:
            findings.append(_unknown(vault, entry, attempts.get(entry.signature)))
        else:
            ignored += 1
        settled.append(entry.finalized)
    return VaultVerdict(findings=tuple(findings), new_cursor=_advance(chain, settled),
                        unsettled=sum(1 for s in settled if not s), ignored_inbound=ignored)


def _attempt_of(attempts: Mapping[str, AttemptRecord], signature: str, vault: str) -> AttemptRecord | None:
    attempt = attempts.get(signature)
    return attempt if attempt is not None and attempt.vault == vault else None


def _advance(chain: Sequence[ChainSignature], settled: Sequence[bool]) -> str | None:
    """The newest signature such that it and every older walked one are settled (oldest first: stop
    at the first unsettled one, so nothing newer than it is skipped next time)."""
    cursor = None
    for entry, ok in zip(reversed(chain), reversed(settled), strict=True):
        if not ok:
            break
        cursor = entry.signature
    return cursor


def _judge_attempt(vault: str, entry: ChainSignature, attempt: AttemptRecord,
                   other_fills: Sequence[str] = ()) -> Finding | None:
    outcome = attempt.outcome
    on_chain = f"landed in slot {entry.slot} ({entry.confirmation}" + (
        f", failed: {entry.error})" if entry.failed else ", succeeded)")
    where = f"attempt {attempt.attempt_no} of trade {attempt.trade_id} ({attempt.trade_state.value})"
    if outcome in (AttemptOutcome.EXPIRED, AttemptOutcome.NOT_SENT):
        if entry.failed:
            fill = ""
        elif other_fills:
            fill = (f"; it FILLED, and so did {', '.join(other_fills)} of the same trade: "
                    f"trade {attempt.trade_id} filled {len(other_fills) + 1} times")
        else:
            fill = "; it FILLED: if the trade was re-signed, it may have filled twice"
        detail = f"{where} is recorded {outcome.value} but {on_chain}{fill}"
    elif outcome is AttemptOutcome.FAILED_ON_CHAIN and not entry.failed:
        detail = f"{where} is recorded FAILED_ON_CHAIN but {on_chain}: a fill the ledger counts as failed"
    else:
        # PENDING (in flight), LANDED (CONFIRMED trades are checked by status, see classify_confirmed),
        # FAILED_ON_CHAIN that failed: the ledger and the chain agree
        return None
    return Finding(FindingClass.UNRECORDED_LANDING, vault, entry.signature, detail, trade_id=attempt.trade_id,
                   slot=entry.slot, strategy=attempt.strategy or None)


def _unknown(vault: str, entry: ChainSignature, other: AttemptRecord | None) -> Finding:
    result = f"failed: {entry.error}" if entry.failed else "succeeded"
    detail = (f"the vault signed a transaction the ledger has no attempt for (slot {entry.slot}, "
              f"{entry.confirmation}, {result}): its key was used outside the executor, or an executor "
              "sent bytes it never recorded")
    if other is not None:
        detail += f"; the signature is attempt {other.attempt_no} of trade {other.trade_id} of vault {other.vault}"
    return Finding(FindingClass.UNKNOWN_TRANSACTION, vault, entry.signature, detail, slot=entry.slot)


# ---- CONFIRMED trades ------------------------------------------------------------------------------


class FinalityVerdict(str, enum.Enum):
    FINAL = "FINAL"  # finalized without an error: verified, never checked again
    WAITING = "WAITING"  # not final yet, within the grace window
    NOT_FINAL = "NOT_FINAL"  # past the grace window (or failed at finalized): a finding


@dataclass(frozen=True)
class ConfirmedTrade:
    trade_id: int
    vault: str
    final_signature: str
    age_seconds: float  # since the ledger recorded it CONFIRMED (database clock)
    strategy: str = ""


@dataclass(frozen=True)
class ObservedStatus:
    """A getSignatureStatuses entry for the trade's final signature."""

    slot: int
    confirmation: str
    failed: bool
    error: str | None = None

    def __post_init__(self) -> None:
        if self.confirmation not in COMMITMENT_RANK:
            raise ValueError(f"confirmation: must be one of {sorted(COMMITMENT_RANK)}, got {self.confirmation!r}")


@dataclass(frozen=True)
class FinalityGrace:
    """How long a CONFIRMED trade's transaction may stay short of finalized before it is reported:
    a finding once EITHER the trade was confirmed more than ``seconds`` ago, OR the status answer's
    context slot is more than ``slots`` past the transaction's slot (finalization takes about 32
    slots, ~13 s, on a healthy cluster)."""

    seconds: float = 120.0
    slots: int = 150

    def __post_init__(self) -> None:
        if self.seconds < 0 or self.slots < 0:
            raise ValueError(f"grace: seconds and slots must be >= 0, got {self.seconds}, {self.slots}")


@dataclass(frozen=True)
class ConfirmedCheck:
    verdict: FinalityVerdict
    finding: Finding | None = None


def classify_confirmed(trade: ConfirmedTrade, status: ObservedStatus | None, context_slot: int,
                       grace: FinalityGrace) -> ConfirmedCheck:
    """Whether a CONFIRMED trade's final transaction is final on chain. A failure at finalized is a
    finding at once; a missing or unfinalized (or failed, unfinalized) one only past the grace."""
    if status is not None and status.confirmation == "finalized":
        if not status.failed:
            return ConfirmedCheck(FinalityVerdict.FINAL)
        return _not_final(trade, status, f"its transaction failed on chain at finalized, slot {status.slot}: "
                                         f"{status.error}")
    past_seconds = trade.age_seconds > grace.seconds
    if status is None:
        if not past_seconds:
            return ConfirmedCheck(FinalityVerdict.WAITING)
        return _not_final(trade, None, f"its transaction is not on chain {trade.age_seconds:.0f}s after the trade "
                                       f"was confirmed (grace {grace.seconds:g}s; status answer as of slot "
                                       f"{context_slot})")
    behind = context_slot - status.slot
    if not (past_seconds or behind > grace.slots):
        return ConfirmedCheck(FinalityVerdict.WAITING)
    failed = f", and failed: {status.error}" if status.failed else ""
    return _not_final(trade, status, f"its transaction is still {status.confirmation} (slot {status.slot}, "
                                     f"{behind} slots behind the answer's slot {context_slot}, "
                                     f"{trade.age_seconds:.0f}s after confirmation){failed}")


def _not_final(trade: ConfirmedTrade, status: ObservedStatus | None, why: str) -> ConfirmedCheck:
    return ConfirmedCheck(FinalityVerdict.NOT_FINAL, Finding(
        FindingClass.CONFIRMED_NOT_FINAL, trade.vault, trade.final_signature,
        f"trade {trade.trade_id} is CONFIRMED but {why}", trade_id=trade.trade_id,
        slot=None if status is None else status.slot, strategy=trade.strategy or None))
