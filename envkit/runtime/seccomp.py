"""A compact seccomp deny-list, assembled by hand as classic BPF.

Docker's default profile is an allow-list of ~350 system calls compiled by libseccomp.
envkit has no libseccomp, so it loads the inverse: the calls that profile refuses to a
container with docker's default capabilities (kernel modules, kexec, keyrings, bpf,
perf, mount and the new mount API, namespaces, clock setting, swap, reboot, quotas,
handles, userfaultfd, io_uring ...) fail with EPERM, ``clone`` with a namespace flag fails
with EPERM, and ``clone3`` with ENOSYS so that libc falls back to ``clone`` (docker does
the same, as BPF cannot read clone3's flags behind a pointer). System calls of another
ABI (i386 via ``int 0x80``, x32) fail with ENOSYS: the deny-list is per ABI and only the
native one is written, so letting others through would bypass it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

from envkit.runtime.prctl import PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prctl

_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06

_OFFSET_NR = 0
_OFFSET_ARCH = 4
_OFFSET_ARG0_LOW = 16  # args[0] of struct seccomp_data, little-endian low word

X32_SYSCALL_BIT = 0x40000000
#: CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET, as docker's profile masks.
CLONE_NAMESPACE_FLAGS = 0x7E020000

#: x86_64 numbers of the denied calls (asm/unistd_64.h).
DENIED_X86_64 = {
    "syslog": 103,
    "uselib": 134,
    "ustat": 136,
    "sysfs": 139,
    "vhangup": 153,
    "pivot_root": 155,
    "_sysctl": 156,
    "acct": 163,
    "settimeofday": 164,
    "mount": 165,
    "umount2": 166,
    "swapon": 167,
    "swapoff": 168,
    "reboot": 169,
    "iopl": 172,
    "ioperm": 173,
    "create_module": 174,
    "init_module": 175,
    "delete_module": 176,
    "get_kernel_syms": 177,
    "query_module": 178,
    "quotactl": 179,
    "nfsservctl": 180,
    "lookup_dcookie": 212,
    "clock_settime": 227,
    "kexec_load": 246,
    "add_key": 248,
    "request_key": 249,
    "keyctl": 250,
    "unshare": 272,
    "move_pages": 279,
    "perf_event_open": 298,
    "fanotify_init": 300,
    "name_to_handle_at": 303,
    "open_by_handle_at": 304,
    "clock_adjtime": 305,
    "setns": 308,
    "finit_module": 313,
    "kexec_file_load": 320,
    "bpf": 321,
    "userfaultfd": 323,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "mount_setattr": 442,
    "quotactl_fd": 443,
}
_ARCHES = {"x86_64": (0xC000003E, DENIED_X86_64, 56, 435)}  # audit arch, table, clone, clone3


def supported() -> bool:
    """Whether a filter exists for this machine's architecture."""
    return os.uname().machine in _ARCHES


def program(machine: str | None = None) -> list[tuple[int, int, int, int]]:
    """The filter as ``(code, jt, jf, k)`` instructions for ``machine`` (default: this one)."""
    arch, denied, clone, clone3 = _ARCHES[machine or os.uname().machine]
    # Jumps name labels; they are resolved to relative offsets below.
    code: list[tuple[int, str | int, str | int, int]] = [
        (_LD_W_ABS, 0, 0, _OFFSET_ARCH),
        (_JEQ_K, 0, "enosys", arch),
        (_LD_W_ABS, 0, 0, _OFFSET_NR),
        (_JGE_K, "enosys", 0, X32_SYSCALL_BIT),
        (_JEQ_K, "enosys", 0, clone3),
        (_JEQ_K, "clone", 0, clone),
    ]
    code += [(_JEQ_K, "eperm", 0, number) for number in sorted(denied.values())]
    labels = {"clone": len(code) + 1}
    code += [
        (_RET_K, 0, 0, _RET_ALLOW),
        (_LD_W_ABS, 0, 0, _OFFSET_ARG0_LOW),
        (_JSET_K, "eperm", 0, CLONE_NAMESPACE_FLAGS),
        (_RET_K, 0, 0, _RET_ALLOW),  # BPF jumps only forward: a second "allow"
    ]
    labels["eperm"] = len(code)
    code.append((_RET_K, 0, 0, _RET_ERRNO | errno.EPERM))
    labels["enosys"] = len(code)
    code.append((_RET_K, 0, 0, _RET_ERRNO | errno.ENOSYS))

    def offset(index: int, target: str | int) -> int:
        if isinstance(target, int):
            return target
        distance = labels[target] - index - 1
        assert 0 <= distance < 256, "classic BPF jumps are one byte"
        return distance

    return [(op, offset(i, jt), offset(i, jf), k) for i, (op, jt, jf, k) in enumerate(code)]


class _Fprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


#: The assembled filter of this machine and the buffer it points into (kept alive).
_prepared: tuple[_Fprog, ctypes.Array[ctypes.c_char]] | None = None


def prepare() -> None:
    """Assemble the filter now (once per process), so that :func:`install` in a forked
    child only loads it: assembling takes ~0.2 ms, which after the fork delays the exec."""
    global _prepared
    if _prepared is None:
        instructions = program()
        raw = b"".join(struct.pack("=HBBI", *ins) for ins in instructions)
        buffer = ctypes.create_string_buffer(raw, len(raw))
        _prepared = (_Fprog(len(instructions), ctypes.cast(buffer, ctypes.c_void_p)), buffer)


def install() -> None:
    """Load the filter into the calling thread (needs no_new_privs or CAP_SYS_ADMIN)."""
    prepare()
    assert _prepared is not None
    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(_prepared[0]))
