"""Run-time fault injection for the local chain's HTTP endpoints (pure decision logic, no I/O).

Kinds (each scoped to one JSON-RPC method, ``quote``/``swap`` for the swap API, ``jupiter`` for both,
``price`` for the price API, or ``*`` for every JSON-RPC method; fires with ``probability`` at most ``count`` times):

- ``latency``: wait ``delay_ms`` and then handle the request normally. A delay longer than the
  client's timeout means the request is still processed after the client gave up (late landing).
- ``timeout``: hold the request ``hang_s`` seconds, never process it, then drop the connection.
- ``drop_after_process``: process the request (a sendTransaction lands on chain!) and then lose the
  answer: ``answer`` = ``timeout`` (hold ``hang_s`` then drop the connection), ``close`` (drop the
  connection at once), ``error`` (JSON-RPC error ``code``) or ``http_error`` (HTTP ``status``).
- ``error``: answer a JSON-RPC error without processing (default -32005 "Node is unhealthy").
- ``http_error``: answer HTTP ``status`` (default 503) without processing.
- ``malformed``: answer HTTP 200 with a body that is not valid JSON, without processing.
- ``answer``: answer HTTP 200 with the JSON-RPC ``result`` given, verbatim, without processing (a
  node that lies in well-formed JSON: pages out of order, repeated entries, missing fields). JSON-RPC
  methods only.
- ``status_lag``: answer the request as an RPC node ``blocks`` behind would (a load balancer that
  routes it to a lagging backend). Everything the answer reads is as of that node's head, ``blocks``
  blocks back: the context slot of every answer that has one (getSignatureStatuses included), slots
  and block heights (getSlot, getBlockHeight, getEpochInfo, getLatestBlockhash, at each commitment
  counted back from the lagging head), transactions (getSignatureStatuses, getTransaction and
  getSignaturesForAddress do not find those of the last ``blocks`` blocks, and report confirmation
  depth from the lagging head). Not lagged, because the local chain keeps only its latest state:
  account data and balances (only their context slot lags), and sendTransaction, which is processed
  as a lagging node would forward it to the current leader. Scope it to getSignatureStatuses to get
  the hazard of issue 12: the finalized height from a current node says an attempt's window is over,
  while the status from the lagging node does not know the attempt that landed in the window's last
  blocks; only the status answer's context slot (older than the finalized slot) shows it is stale.

- ``hostile``: the swap API answers as a hostile one would, in ``mode`` (one of
  ``market.HOSTILE_MODES``: drain, approve, authority, assign, wrong_mint, wrong_amount,
  excess_priority_fee, lowball_validity, extra_signer on ``swap``; nan_price_impact,
  inf_price_impact on ``quote``). Scope it to ``jupiter``, ``swap`` or ``quote``.

Several latency faults add up; of the other kinds the first one that fires decides.

Scope ``node``: the chain answers JSON-RPC at ``/`` (RPC node ``main``) and at ``/nodes/<name>/`` (more
RPC nodes of the same cluster, e.g. a second provider). A fault with ``node`` = ``*`` (the default)
hits every node; with a name, only requests to that node. So one node can lag while another is current.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from xorj.errors import InvalidInputError

KINDS = ("latency", "timeout", "drop_after_process", "error", "http_error", "malformed", "status_lag", "hostile",
         "answer")
# kept here (not imported from market) so this module stays free of the chain's dependencies
HOSTILE_SWAP_MODES = ("drain", "approve", "authority", "assign", "wrong_mint", "wrong_amount", "excess_priority_fee",
                      "lowball_validity", "extra_signer")
HOSTILE_QUOTE_MODES = ("nan_price_impact", "inf_price_impact")
ANSWERS = ("timeout", "close", "error", "http_error")
JUPITER_METHODS = ("quote", "swap")
PRICE_METHOD = "price"  # the price API v3: only a fault scoped to it by name applies
MAIN_NODE = "main"  # the RPC node answering at "/"
NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,62}")


@dataclass
class FaultSpec:
    kind: str
    method: str = "*"
    probability: float = 1.0
    count: int | None = None
    delay_ms: int = 0
    hang_s: float = 30.0
    answer: str = "timeout"
    code: int = -32005
    message: str = "Node is unhealthy"
    status: int = 503
    blocks: int = 0
    mode: str = ""
    node: str = "*"
    result: Any = None  # the JSON-RPC result an ``answer`` fault gives

    @classmethod
    def from_json(cls, body: Any) -> FaultSpec:
        if not isinstance(body, dict):
            raise InvalidInputError("fault: expected a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(body) - known)
        if unknown:
            raise InvalidInputError(f"fault: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        try:
            spec = cls(**body)
        except TypeError as exc:
            raise InvalidInputError(f"fault: {exc}") from None
        spec.validate()
        return spec

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise InvalidInputError(f"fault.kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not isinstance(self.method, str) or not self.method:
            raise InvalidInputError("fault.method must be a method name, 'quote', 'swap', 'jupiter' or '*'")
        if not isinstance(self.probability, (int, float)) or not 0 <= self.probability <= 1:
            raise InvalidInputError(f"fault.probability must be between 0 and 1, got {self.probability!r}")
        if self.count is not None and (not isinstance(self.count, int) or self.count < 1):
            raise InvalidInputError(f"fault.count must be a positive integer or null, got {self.count!r}")
        if not isinstance(self.delay_ms, int) or self.delay_ms < 0:
            raise InvalidInputError(f"fault.delay_ms must be a non-negative integer, got {self.delay_ms!r}")
        if not isinstance(self.hang_s, (int, float)) or self.hang_s < 0:
            raise InvalidInputError(f"fault.hang_s must be a non-negative number, got {self.hang_s!r}")
        if self.answer not in ANSWERS:
            raise InvalidInputError(f"fault.answer must be one of {', '.join(ANSWERS)}, got {self.answer!r}")
        if not isinstance(self.status, int) or not 400 <= self.status <= 599:
            raise InvalidInputError(f"fault.status must be an HTTP error status 400-599, got {self.status!r}")
        if not isinstance(self.blocks, int) or self.blocks < 0:
            raise InvalidInputError(f"fault.blocks must be a non-negative integer, got {self.blocks!r}")
        if self.kind == "status_lag" and self.blocks < 1:
            raise InvalidInputError("fault.blocks must be at least 1 for a status_lag fault")
        if self.kind == "hostile":
            modes = HOSTILE_SWAP_MODES + HOSTILE_QUOTE_MODES
            if self.mode not in modes:
                raise InvalidInputError(f"fault.mode must be one of {', '.join(modes)} for a hostile fault, "
                                        f"got {self.mode!r}")
            wanted = "quote" if self.mode in HOSTILE_QUOTE_MODES else "swap"
            if self.method not in (wanted, "jupiter"):
                raise InvalidInputError(f"fault.method must be {wanted!r} or 'jupiter' for hostile mode {self.mode}")
        elif self.mode:
            raise InvalidInputError("fault.mode is only for a hostile fault")
        if not isinstance(self.node, str) or not (self.node == "*" or NODE_NAME.fullmatch(self.node)):
            raise InvalidInputError(f"fault.node must be '*' or a node name (letters, digits, '-'), got {self.node!r}")
        if self.kind == "answer" and self.method in (*JUPITER_METHODS, "jupiter", PRICE_METHOD):
            raise InvalidInputError("fault.method must be a JSON-RPC method (or '*') for an answer fault")
        if self.kind != "answer" and self.result is not None:
            raise InvalidInputError("fault.result is only for an answer fault")
        if not isinstance(self.code, int):
            raise InvalidInputError(f"fault.code must be an integer JSON-RPC error code, got {self.code!r}")

    def applies_to(self, method: str, node: str = MAIN_NODE) -> bool:
        if self.node != "*" and self.node != node:
            return False
        if self.kind == "hostile":
            wanted = "quote" if self.mode in HOSTILE_QUOTE_MODES else "swap"
            return method == wanted and self.method in (wanted, "jupiter")
        if self.method == method:
            return True
        if self.method == "jupiter":
            return method in JUPITER_METHODS
        return self.method == "*" and method not in JUPITER_METHODS and method != PRICE_METHOD


@dataclass
class ActiveFault:
    id: int
    spec: FaultSpec
    fired: int = 0

    def exhausted(self) -> bool:
        return self.spec.count is not None and self.fired >= self.spec.count

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "fired": self.fired, **asdict(self.spec)}


@dataclass
class Decision:
    """What to do with one request: total extra delay, and at most one disruptive fault."""

    delay_ms: int = 0
    fault: FaultSpec | None = None


@dataclass
class FaultEngine:
    seed: int | None = None
    faults: list[ActiveFault] = field(default_factory=list)
    fired_total: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._next_id = 1

    def add(self, spec: FaultSpec) -> int:
        spec.validate()
        fault = ActiveFault(self._next_id, spec)
        self._next_id += 1
        self.faults.append(fault)
        return fault.id

    def reset(self) -> None:
        self.faults.clear()

    def remove(self, fault_id: int) -> bool:
        """Remove one fault (the others keep firing); False when no active fault has that id."""
        before = len(self.faults)
        self.faults = [fault for fault in self.faults if fault.id != fault_id]
        return len(self.faults) < before

    def decide(self, method: str, node: str = MAIN_NODE) -> Decision:
        decision = Decision()
        for fault in self.faults:
            if fault.exhausted() or not fault.spec.applies_to(method, node):
                continue
            if fault.spec.kind != "latency" and decision.fault is not None:
                continue
            if self._rng.random() >= fault.spec.probability:
                continue
            fault.fired += 1
            key = f"{fault.spec.kind}:{method}"
            self.fired_total[key] = self.fired_total.get(key, 0) + 1
            if fault.spec.kind == "latency":
                decision.delay_ms += fault.spec.delay_ms
            else:
                decision.fault = fault.spec
        return decision

    def to_json(self) -> list[dict[str, Any]]:
        return [fault.to_json() for fault in self.faults]
