"""A tiny sBPF (Solana BPF, version 0) assembler and ELF writer.

There is no Solana SBF toolchain on the development machines, so the on-chain part of the local
Jupiter stand-in is assembled here from a handful of instructions and wrapped in the smallest ELF
that solana-sbpf's lenient (SBPFv0) loader accepts:

- ``e_flags = 0`` selects SBPF version 0, which goes through ``load_with_lenient_parser``;
- ``e_type = ET_DYN``, ``e_machine = EM_BPF``, OS ABI none, little endian, 64-bit;
- exactly one ``.text`` section whose ``sh_addr == sh_offset`` (``reject_broken_elfs``);
- a section-name string table (``e_shstrndx``) and a null section header first;
- no program headers, no dynamic section, no relocations (the program calls no syscalls);
- ``e_entry`` inside ``.text`` and instruction aligned.

Instructions are the classic eBPF 8-byte encoding: opcode, dst|src<<4, i16 offset, i32 immediate.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

INSN_SIZE = 8

# opcodes (eBPF classic encoding, as sBPF v0 uses them)
LDXB = 0x71
LDXDW = 0x79
STXDW = 0x7B
MOV64_IMM = 0xB7
MOV64_REG = 0xBF
ADD64_IMM = 0x07
ADD64_REG = 0x0F
AND64_IMM = 0x57
MUL64_REG = 0x2F
LSH64_IMM = 0x67
RSH64_IMM = 0x77
JA = 0x05
JEQ_IMM = 0x15
JNE_IMM = 0x55
JGT_REG = 0x2D
JGE_REG = 0x3D
JLT_REG = 0xAD
JLT_IMM = 0xA5
EXIT = 0x95

_JUMPS = {JA, JEQ_IMM, JNE_IMM, JGT_REG, JGE_REG, JLT_REG, JLT_IMM}


@dataclass
class Assembler:
    """Collects instructions; jumps may name a label that is resolved by :meth:`assemble`."""

    _insns: list[tuple[int, int, int, int | str, int]] = field(default_factory=list)
    _labels: dict[str, int] = field(default_factory=dict)

    def label(self, name: str) -> None:
        if name in self._labels:
            raise ValueError(f"label {name!r} defined twice")
        self._labels[name] = len(self._insns)

    def emit(self, opcode: int, dst: int = 0, src: int = 0, off: int | str = 0, imm: int = 0) -> None:
        for reg in (dst, src):
            if not 0 <= reg <= 10:
                raise ValueError(f"register r{reg} does not exist")
        self._insns.append((opcode, dst, src, off, imm))

    def assemble(self) -> bytes:
        out = bytearray()
        for pc, (opcode, dst, src, off, imm) in enumerate(self._insns):
            if isinstance(off, str):
                if opcode not in _JUMPS:
                    raise ValueError(f"label offset on non-jump opcode {opcode:#x}")
                off = self._labels[off] - (pc + 1)  # relative to the next instruction
            out += struct.pack("<BBhi", opcode, (src << 4) | dst, off, imm)
        return bytes(out)


def _section_header(name: int, sh_type: int, flags: int, addr: int, offset: int, size: int,
                    align: int) -> bytes:
    # Elf64_Shdr: name, type, flags, addr, offset, size, link, info, addralign, entsize
    return struct.pack("<IIQQQQIIQQ", name, sh_type, flags, addr, offset, size, 0, 0, align, 0)


def build_elf(text: bytes) -> bytes:
    """Wrap sBPF v0 machine code in a shared-object ELF that solana-sbpf's lenient loader accepts."""
    if not text or len(text) % INSN_SIZE:
        raise ValueError("text must be a non-empty whole number of 8-byte instructions")
    ehdr_size, shdr_size = 64, 64
    text_offset = ehdr_size  # right after the file header; sh_addr == sh_offset
    shstrtab = b"\0.text\0.shstrtab\0"
    shstrtab_offset = text_offset + len(text)
    shoff = (shstrtab_offset + len(shstrtab) + 7) & ~7
    sections = [
        _section_header(0, 0, 0, 0, 0, 0, 0),  # SHT_NULL
        # .text: SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR
        _section_header(1, 1, 0x2 | 0x4, text_offset, text_offset, len(text), 8),
        # .shstrtab: SHT_STRTAB
        _section_header(7, 3, 0, 0, shstrtab_offset, len(shstrtab), 1),
    ]
    e_ident = b"\x7fELF" + bytes([2, 1, 1, 0, 0]) + b"\0" * 7  # 64-bit, LE, version 1, SysV ABI
    ehdr = e_ident + struct.pack(
        "<HHIQQQIHHHHHH",
        3,  # e_type ET_DYN
        247,  # e_machine EM_BPF
        1,  # e_version
        text_offset,  # e_entry: first instruction of .text
        0,  # e_phoff (no program headers)
        shoff,  # e_shoff
        0,  # e_flags: SBPF v0
        ehdr_size,
        56,  # e_phentsize (checked even when e_phnum is 0)
        0,  # e_phnum
        shdr_size,
        len(sections),
        2,  # e_shstrndx
    )
    body = ehdr + text + shstrtab
    body += b"\0" * (shoff - len(body))
    return body + b"".join(sections)
