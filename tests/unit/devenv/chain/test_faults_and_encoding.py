"""Pure parts of the local chain: fault decisions and the sBPF assembler."""

from __future__ import annotations

import struct

import pytest

from xorj.devenv.chain.faults import FaultEngine, FaultSpec
from xorj.devenv.chain.sbpf import EXIT, JA, MOV64_IMM, Assembler
from xorj.errors import InvalidInputError


def test_count_limits_firings_and_latency_adds_up() -> None:
    engine = FaultEngine(seed=1)
    engine.add(FaultSpec(kind="latency", method="sendTransaction", delay_ms=100))
    engine.add(FaultSpec(kind="latency", method="*", delay_ms=50))
    engine.add(FaultSpec(kind="error", method="sendTransaction", count=2))
    decisions = [engine.decide("sendTransaction") for _ in range(3)]
    assert [d.delay_ms for d in decisions] == [150, 150, 150]
    assert [d.fault.kind if d.fault else None for d in decisions] == ["error", "error", None]
    assert engine.fired_total["error:sendTransaction"] == 2


def test_first_disruptive_fault_wins_and_scopes_apply() -> None:
    engine = FaultEngine(seed=1)
    engine.add(FaultSpec(kind="timeout", method="getSlot"))
    engine.add(FaultSpec(kind="http_error", method="*"))
    engine.add(FaultSpec(kind="malformed", method="jupiter"))
    assert engine.decide("getSlot").fault.kind == "timeout"
    assert engine.decide("getBalance").fault.kind == "http_error"
    assert engine.decide("quote").fault.kind == "malformed"  # "*" covers JSON-RPC only
    assert engine.decide("swap").fault.kind == "malformed"
    engine.reset()
    assert engine.decide("getSlot").fault is None


def test_probability_is_seeded_and_roughly_honoured() -> None:
    def fired(seed: int) -> list[bool]:
        engine = FaultEngine(seed=seed)
        engine.add(FaultSpec(kind="error", probability=0.3))
        return [engine.decide("getSlot").fault is not None for _ in range(1000)]

    assert fired(7) == fired(7)
    assert 200 < sum(fired(7)) < 400


@pytest.mark.parametrize("body, field", [
    ({"kind": "boom"}, "kind"),
    ({"kind": "error", "probability": -0.1}, "probability"),
    ({"kind": "error", "count": 0}, "count"),
    ({"kind": "latency", "delay_ms": -1}, "delay_ms"),
    ({"kind": "drop_after_process", "answer": "maybe"}, "answer"),
    ({"kind": "http_error", "status": 302}, "status"),
    ({"kind": "error", "colour": 1}, "colour"),
    ({"kind": "status_lag"}, "blocks"),
    ("error", "JSON object"),
])
def test_bad_fault_specs_name_the_field(body: object, field: str) -> None:
    with pytest.raises(InvalidInputError, match=field):
        FaultSpec.from_json(body)


def test_assembler_resolves_labels_relative_to_the_next_instruction() -> None:
    asm = Assembler()
    asm.emit(JA, off="end")
    asm.emit(MOV64_IMM, 0, imm=1)
    asm.label("end")
    asm.emit(EXIT)
    code = asm.assemble()
    assert len(code) == 24
    opcode, regs, offset, imm = struct.unpack_from("<BBhi", code, 0)
    assert (opcode, offset) == (JA, 1)
    with pytest.raises(ValueError):
        asm.emit(MOV64_IMM, 11)


def test_one_fault_can_be_removed_while_the_others_keep_firing() -> None:
    engine = FaultEngine(seed=1)
    timeout = engine.add(FaultSpec(kind="timeout", method="sendTransaction"))
    engine.add(FaultSpec(kind="status_lag", method="getSignatureStatuses", blocks=60))
    assert engine.decide("sendTransaction").fault.kind == "timeout"
    assert engine.remove(timeout) and not engine.remove(timeout)
    assert engine.decide("sendTransaction").fault is None
    assert engine.decide("getSignatureStatuses").fault.blocks == 60


def test_a_fault_can_target_one_rpc_node() -> None:
    engine = FaultEngine(seed=1)
    engine.add(FaultSpec(kind="status_lag", method="getSignatureStatuses", blocks=60, node="lb"))
    assert engine.decide("getSignatureStatuses", "lb").fault.kind == "status_lag"
    assert engine.decide("getSignatureStatuses", "second").fault is None
    assert engine.decide("getSignatureStatuses").fault is None  # the node at "/" is "main"
    engine.add(FaultSpec(kind="error", method="*"))  # node "*": every node
    assert engine.decide("getSlot", "second").fault.kind == "error"
    with pytest.raises(InvalidInputError, match="fault.node"):
        FaultSpec.from_json({"kind": "error", "node": "../x"})


def test_hostile_faults_need_a_known_mode_and_apply_only_to_their_call() -> None:
    engine = FaultEngine(seed=1)
    engine.add(FaultSpec.from_json({"kind": "hostile", "mode": "drain", "method": "jupiter"}))
    engine.add(FaultSpec.from_json({"kind": "hostile", "mode": "nan_price_impact", "method": "jupiter"}))
    assert engine.decide("swap").fault.mode == "drain"
    assert engine.decide("quote").fault.mode == "nan_price_impact"
    assert engine.decide("sendTransaction").fault is None
    for body, field in [({"kind": "hostile", "mode": "steal", "method": "swap"}, "fault.mode"),
                        ({"kind": "hostile", "method": "swap"}, "fault.mode"),
                        ({"kind": "hostile", "mode": "drain", "method": "quote"}, "fault.method"),
                        ({"kind": "error", "mode": "drain"}, "fault.mode")]:
        with pytest.raises(InvalidInputError, match=field):
            FaultSpec.from_json(body)


def test_answer_fault_serves_json_rpc_results_only():
    spec = FaultSpec.from_json({"kind": "answer", "method": "getSignaturesForAddress", "result": [{"slot": 1}]})
    assert spec.result == [{"slot": 1}]
    with pytest.raises(InvalidInputError, match="JSON-RPC method"):
        FaultSpec.from_json({"kind": "answer", "method": "swap", "result": {}})
    with pytest.raises(InvalidInputError, match="only for an answer fault"):
        FaultSpec.from_json({"kind": "error", "result": 1})
