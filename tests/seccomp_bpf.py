"""A classic-BPF interpreter for seccomp filters, to run a filter of any architecture on
a synthetic ``struct seccomp_data`` (the kernel's checks of a loaded filter are not
repeated: it only needs to be a valid program for the kernel to take it)."""

from __future__ import annotations

import struct

AUDIT_ARCH = {
    "x86_64": 0xC000003E,
    "x32": 0xC000003E,  # x32 shares x86_64's token; its numbers carry bit 30
    "x86": 0x40000003,
    "aarch64": 0xC00000B7,
    "arm": 0x40000028,
}
X32_SYSCALL_BIT = 0x40000000

RET_KILL_PROCESS = 0x80000000
RET_KILL_THREAD = 0x00000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000
ACTION_FULL = 0xFFFF0000
DATA = 0x0000FFFF

Instruction = tuple[int, int, int, int]


def parse(raw: bytes) -> list[Instruction]:
    """``struct sock_filter`` array (host byte order, as libseccomp exports it)."""
    assert len(raw) % 8 == 0 and 0 < len(raw) // 8 <= 4096
    return [struct.unpack_from("=HBBI", raw, i) for i in range(0, len(raw), 8)]


def seccomp_data(nr: int, arch: int, args: tuple[int, ...] = (), ip: int = 0) -> bytes:
    """``struct seccomp_data``, little-endian (x86_64, aarch64)."""
    full = tuple(args) + (0,) * (6 - len(args))
    return struct.pack("<iIQ6Q", nr, arch, ip, *(a & 0xFFFFFFFFFFFFFFFF for a in full))


def run(program: list[Instruction], data: bytes) -> int:
    """The filter's 32-bit return value for ``data``."""
    a = x = 0
    mem = [0] * 16
    pc = 0
    m32 = 0xFFFFFFFF
    while True:
        assert 0 <= pc < len(program), "fell off the program"
        code, jt, jf, k = program[pc]
        pc += 1
        cls = code & 0x07
        if cls == 0x00:  # LD
            size, mode = code & 0x18, code & 0xE0
            assert size == 0x00, f"only word loads in seccomp (code {code:#x})"
            if mode == 0x20:  # ABS
                assert k % 4 == 0 and k + 4 <= len(data), f"bad load offset {k}"
                a = struct.unpack_from("<I", data, k)[0]
            elif mode == 0x00:  # IMM
                a = k
            elif mode == 0x60:  # MEM
                a = mem[k]
            elif mode == 0x80:  # LEN
                a = len(data)
            else:
                raise AssertionError(f"unsupported load mode {code:#x}")
        elif cls == 0x01:  # LDX
            mode = code & 0xE0
            if mode == 0x00:
                x = k
            elif mode == 0x60:
                x = mem[k]
            elif mode == 0x80:
                x = len(data)
            else:
                raise AssertionError(f"unsupported ldx mode {code:#x}")
        elif cls == 0x02:  # ST
            mem[k] = a
        elif cls == 0x03:  # STX
            mem[k] = x
        elif cls == 0x04:  # ALU
            op = code & 0xF0
            src = x if code & 0x08 else k
            if op == 0x00:
                a = (a + src) & m32
            elif op == 0x10:
                a = (a - src) & m32
            elif op == 0x20:
                a = (a * src) & m32
            elif op == 0x30:
                a = a // src
            elif op == 0x40:
                a = a | src
            elif op == 0x50:
                a = a & src
            elif op == 0x60:
                a = (a << src) & m32
            elif op == 0x70:
                a = a >> src
            elif op == 0x80:
                a = -a & m32
            elif op == 0x90:
                a = a % src
            elif op == 0xA0:
                a = a ^ src
            else:
                raise AssertionError(f"unsupported alu op {code:#x}")
        elif cls == 0x05:  # JMP
            op = code & 0xF0
            src = x if code & 0x08 else k
            if op == 0x00:  # JA
                pc += k
                continue
            if op == 0x10:
                taken = a == src
            elif op == 0x20:
                taken = a > src
            elif op == 0x30:
                taken = a >= src
            elif op == 0x40:
                taken = bool(a & src)
            else:
                raise AssertionError(f"unsupported jump {code:#x}")
            pc += jt if taken else jf
        elif cls == 0x06:  # RET
            return (a if code & 0x18 == 0x10 else k) & m32
        elif cls == 0x07:  # MISC
            if code & 0xF8 == 0x00:
                x = a
            elif code & 0xF8 == 0x80:
                a = x
            else:
                raise AssertionError(f"unsupported misc {code:#x}")
        else:
            raise AssertionError(f"unknown class {code:#x}")


def verdict(program: list[Instruction], arch: str, nr: int, *args: int) -> str:
    """``ALLOW``, ``ERRNO(n)``, ``KILL`` ... for a system call of ``arch``."""
    if arch == "x32":
        nr |= X32_SYSCALL_BIT
    ret = run(program, seccomp_data(nr, AUDIT_ARCH[arch], args))
    return describe(ret)


def describe(ret: int) -> str:
    action = ret & ACTION_FULL
    if action == RET_ALLOW:
        return "ALLOW"
    if action == RET_ERRNO:
        return f"ERRNO({ret & DATA})"
    if action in (RET_KILL_THREAD, RET_KILL_PROCESS):
        return "KILL"
    if action == RET_TRAP:
        return "TRAP"
    return f"RET({ret:#x})"
