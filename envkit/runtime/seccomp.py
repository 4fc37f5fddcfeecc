"""Docker's default seccomp profile, compiled ahead of time by libseccomp.

The policy is moby's ``default.json`` (``seccomp_profile/default.json``, a verbatim copy;
``seccomp_profile/README.md`` names its commit), interpreted as Docker and runc do:

- Docker (moby/profiles ``setupSeccomp``) keeps the rules whose ``includes`` and
  ``excludes`` match the container's capabilities and the native architecture (its Go
  name: ``amd64``, ``arm64``), and lists the native architecture plus the
  ``subArchitectures`` of the profile's ``archMap`` (x86_64: i386 and x32; aarch64: arm);
- runc (``libcontainer/seccomp``) gives that to libseccomp: the default action
  ``ERRNO(EPERM)``, one filter with every listed architecture, each rule's action
  (``clone3`` fails with ENOSYS so that libc falls back to ``clone``), its argument
  filters (``clone`` without namespace flags, the ``personality`` values, ``socket``
  without AF_ALG or AF_VSOCK), names this libseccomp does not know skipped.

envkit changes three things. A second wall against terminal injection (issue 14):
``ioctl`` with request TIOCSTI or TIOCLINUX fails with EPERM, compared on the low 32 bits
only, as the kernel truncates the request (the high-bits bypass of CVE-2019-10063). As
EPERM is also the default action, libseccomp cannot hold an EPERM rule for them: ``ioctl``
is allowed by rules that match every other low word instead (:func:`masked_cover`).
``socket``'s family is compared the same way: Docker's 64-bit ranges let
``socket(AF_VSOCK | 1 << 32, ...)`` through, which the kernel reads as AF_VSOCK. And a
system call of an architecture the filter does not list gets the default action too,
where libseccomp would kill the thread.

``scripts/gen_seccomp.py`` writes the BPF for envkit's default capabilities and for each
single ``--cap-add`` of a capability the profile names (``seccomp_profile/index.json``
lists them). At run time one small file is read, by name; any other capability set is
compiled with libseccomp (``python3-seccomp``) when it can be imported.
"""

from __future__ import annotations

import ctypes
import os
import sys

from envkit.errors import NoFilterError, RuntimeError_
from envkit.host import syscalls
from envkit.host.prctl import PR_SET_SECCOMP, SECCOMP_MODE_FILTER
from envkit.runtime.caps import DEFAULT, canonical, names

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable
    from types import ModuleType
    from typing import Any

    from envkit.host.syscall_seam import Syscalls

PROFILE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seccomp_profile")
#: moby/profiles commit of ``default.json`` (tag seccomp/v0.2.3, vendored by moby/moby).
PROFILE_COMMIT = "3c28324314729dbade8287e868eef6338c42807a"

#: Machines with a shipped filter: ``uname -m`` -> (libseccomp arch, Go arch of Docker).
ARCHES = {"x86_64": ("SCMP_ARCH_X86_64", "amd64"), "aarch64": ("SCMP_ARCH_AARCH64", "arm64")}
#: The capabilities the profile's rules name (a test checks this against the profile).
PROFILE_CAPS = frozenset(
    {
        "CAP_BPF",
        "CAP_DAC_READ_SEARCH",
        "CAP_PERFMON",
        "CAP_SYSLOG",
        "CAP_SYS_ADMIN",
        "CAP_SYS_BOOT",
        "CAP_SYS_CHROOT",
        "CAP_SYS_MODULE",
        "CAP_SYS_NICE",
        "CAP_SYS_PACCT",
        "CAP_SYS_PTRACE",
        "CAP_SYS_RAWIO",
        "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG",
    }
)
#: envkit's default capabilities (:data:`envkit.runtime.caps.DEFAULT`), by name.
DEFAULT_CAPS = frozenset(names(DEFAULT))

TIOCSTI = 0x5412
TIOCLINUX = 0x541C
#: ``ioctl`` requests refused (EPERM) whatever the capabilities.
REFUSED_IOCTLS = (TIOCSTI, TIOCLINUX)
#: The socket families Docker's profile refuses (AF_ALG, AF_VSOCK); envkit compares them on
#: the low 32 bits, as the kernel reads ``int family``.
REFUSED_SOCKET_FAMILIES = (38, 40)
#: CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET, as docker's profile masks.
CLONE_NAMESPACE_FLAGS = 0x7E020000
DIST_PACKAGES = "/usr/lib/python3/dist-packages"


class _Fprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


#: Loaded filters by capability key, each with the buffer it points into (kept alive).
_prepared: dict[str, tuple[_Fprog, ctypes.Array[ctypes.c_char]]] = {}


def supported() -> bool:
    """Whether a filter exists for this machine's architecture."""
    return os.uname().machine in ARCHES


def profile_name() -> str:
    """The profile in use, for ``envkit inspect``."""
    return f"docker-default (moby/profiles {PROFILE_COMMIT[:12]})"


def normalize_caps(caps: Iterable[str]) -> frozenset[str]:
    """Capability names as the profile spells them: ``sys_admin`` -> ``CAP_SYS_ADMIN``."""
    return frozenset(canonical(name) for name in caps)


def filter_key(caps: frozenset[str] | None = None) -> str:
    """The name of the filter for ``caps`` (None: envkit's defaults), as the shipped
    files are named: ``default``, ``default+SYS_PTRACE``, or, for a set with no shipped
    file, ``caps+A+B...`` (every capability of the set the profile names)."""
    relevant = (DEFAULT_CAPS if caps is None else normalize_caps(caps)) & PROFILE_CAPS
    base = DEFAULT_CAPS & PROFILE_CAPS
    extra = relevant - base
    if relevant >= base and len(extra) <= 1:
        return "default" + "".join("+" + name[4:] for name in extra)
    return "caps" + "".join("+" + name[4:] for name in sorted(relevant))


def bpf_path(machine: str, key: str) -> str:
    """The shipped BPF file of ``machine`` for capability key ``key``."""
    return os.path.join(PROFILE_DIR, f"{machine}-{key}.bpf")


def prepare(caps: frozenset[str] | None = None) -> None:
    """Load the filter for ``caps`` (None: envkit's default capabilities) now, once per
    process and before any fork: after pivot_root neither the file nor a lazy import is
    reachable. A set with no shipped file is compiled with libseccomp."""
    key = filter_key(caps)
    if key in _prepared:
        return
    machine = os.uname().machine
    if machine not in ARCHES:
        raise NoFilterError(
            f"no seccomp filter for this architecture ({machine}); envkit has Docker's "
            f"default profile for {', '.join(sorted(ARCHES))}",
            hint="run with --security-opt seccomp=unconfined to start without a filter",
        )
    try:
        with open(bpf_path(machine, key), "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        if not os.path.isdir(PROFILE_DIR):
            raise RuntimeError_(
                f"seccomp filter {key!r} was not prepared before entering the container "
                f"({PROFILE_DIR} is out of reach)",
                hint="call envkit.runtime.seccomp.prepare(caps) before forking",
            ) from None
        raw = _compile_at_run_time(machine, DEFAULT_CAPS if caps is None else caps)
    _keep(key, raw)


def _keep(key: str, raw: bytes) -> None:
    if not raw or len(raw) % 8 or len(raw) // 8 > 4096:
        raise RuntimeError_(f"seccomp filter {key!r} is malformed ({len(raw)} bytes)")
    buffer = ctypes.create_string_buffer(raw, len(raw))
    _prepared[key] = (_Fprog(len(raw) // 8, ctypes.cast(buffer, ctypes.c_void_p)), buffer)


def _preload() -> None:
    """Read the default filter now, at import (one small file): a process forked into a
    container's namespaces without a :func:`prepare` (``exec``'s helper) still has it."""
    machine = os.uname().machine
    if machine in ARCHES:
        try:
            with open(bpf_path(machine, "default"), "rb") as f:
                _keep("default", f.read())
        except (OSError, RuntimeError_):
            pass  # prepare() says why, when it is asked for


def install(caps: frozenset[str] | None = None, kernel: Syscalls = syscalls) -> None:
    """Load the filter for ``caps`` into the calling thread (needs no_new_privs or
    CAP_SYS_ADMIN); :func:`prepare` must have run for the same ``caps`` before pivot_root."""
    key = filter_key(caps)
    if key not in _prepared:
        prepare(caps)
    kernel.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(_prepared[key][0]))


# Compilation: the generator's path, and the run-time fallback for an unusual cap set.


def load_profile() -> dict[str, Any]:
    """Docker's default profile as shipped."""
    import json  # lazy for start-up: a start loads the compiled filter, not the profile

    with open(os.path.join(PROFILE_DIR, "default.json")) as f:
        profile: dict[str, Any] = json.load(f)
    return profile


def masked_cover(excluded: Iterable[int], width: int = 32) -> list[tuple[int, int]]:
    """``(mask, value)`` pairs whose ``x & mask == value`` match, together, every
    ``width``-bit ``x`` but those of ``excluded``: a binary trie walk from the top bit,
    emitting each subtree that holds no excluded value (34 pairs for TIOCSTI+TIOCLINUX)."""
    out: list[tuple[int, int]] = []

    def walk(mask: int, value: int, bit: int, inside: list[int]) -> None:
        if not inside:
            out.append((mask, value))
            return
        if bit < 0:
            return
        b = 1 << bit
        for half in (0, b):
            walk(mask | b, value | half, bit - 1, [x for x in inside if x & b == half])

    walk(0, 0, width - 1, sorted(set(excluded)))
    return out


def oci_config(profile: dict[str, Any], machine: str, caps: Iterable[str]) -> dict[str, Any]:
    """The OCI ``linux.seccomp`` Docker gives runc for this profile, machine and
    capability set (moby/profiles ``setupSeccomp``: ``minKernel`` taken as satisfied),
    with envkit's ioctl rules in place of the unconditional ``ioctl``."""
    have = normalize_caps(caps)
    native, goarch = ARCHES[machine]
    arches = [native]
    for entry in profile.get("archMap") or ():
        if entry["architecture"] == native:
            arches += entry.get("subArchitectures") or []
    syscalls: list[dict[str, Any]] = []
    for call in profile["syscalls"]:
        excludes = call.get("excludes") or {}
        includes = call.get("includes") or {}
        if goarch in (excludes.get("arches") or ()):
            continue
        if any(cap in have for cap in excludes.get("caps") or ()):
            continue
        if excludes.get("minKernel"):
            continue
        if includes.get("arches") and goarch not in includes["arches"]:
            continue
        if not all(cap in have for cap in includes.get("caps") or ()):
            continue
        rule = {k: v for k, v in call.items() if k in ("names", "action", "errnoRet", "args")}
        args = rule.get("args") or ()
        if rule["names"] == ["socket"] and args and all(arg["index"] == 0 for arg in args):
            # Docker's three 64-bit ranges allow every family but AF_ALG and AF_VSOCK,
            # and also AF_VSOCK | 1 << 32, which the kernel reads as AF_VSOCK.
            if not any(other["names"] == ["socket"] for other in syscalls):
                syscalls += _low_word_rules("socket", 0, REFUSED_SOCKET_FAMILIES)
            continue
        if "ioctl" in rule["names"] and not args and rule["action"] == "SCMP_ACT_ALLOW":
            rule["names"] = [name for name in rule["names"] if name != "ioctl"]
            syscalls.append(rule)
            syscalls += _low_word_rules("ioctl", 1, REFUSED_IOCTLS)
            continue
        syscalls.append(rule)
    return {
        "defaultAction": profile["defaultAction"],
        "defaultErrnoRet": profile.get("defaultErrnoRet"),
        "architectures": arches,
        "syscalls": syscalls,
    }


def _low_word_rules(name: str, index: int, refused: Iterable[int]) -> list[dict[str, Any]]:
    """ALLOW rules for ``name`` whose argument ``index``, on its low 32 bits, is none of
    ``refused`` (OCI's MASKED_EQ: ``value`` is the mask, ``valueTwo`` the datum)."""
    return [
        {
            "names": [name],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": index, "value": m, "valueTwo": v, "op": "SCMP_CMP_MASKED_EQ"}],
        }
        for m, v in masked_cover(refused)
    ]


def compile_bpf(config: dict[str, Any], libseccomp: ModuleType) -> tuple[bytes, list[str]]:
    """Compile an OCI seccomp config as runc does (``InitSeccomp``), with libseccomp's
    Python bindings; the raw BPF and the names libseccomp could not resolve (skipped)."""
    sc = libseccomp

    def action(name: str, errno_ret: int | None) -> int:
        if name == "SCMP_ACT_ERRNO":
            return int(sc.ERRNO(1 if errno_ret is None else errno_ret))
        simple = {
            "SCMP_ACT_ALLOW": "ALLOW",
            "SCMP_ACT_KILL": "KILL",
            "SCMP_ACT_KILL_THREAD": "KILL",
            "SCMP_ACT_KILL_PROCESS": "KILL_PROCESS",
            "SCMP_ACT_TRAP": "TRAP",
            "SCMP_ACT_LOG": "LOG",
        }
        if name not in simple:
            raise RuntimeError_(f"seccomp action {name} is not supported by envkit")
        return int(getattr(sc, simple[name]))

    default = action(config["defaultAction"], config.get("defaultErrnoRet"))
    filt = sc.SyscallFilter(default)
    tokens = [getattr(sc.Arch, arch.removeprefix("SCMP_ARCH_")) for arch in config["architectures"]]
    for token in tokens:
        if not filt.exist_arch(token):
            filt.add_arch(token)
    host = sc.Arch.NATIVE  # names resolve, and rules translate, from the host's arch
    if all(token & 0xFFFFFFFF != sc.system_arch() for token in tokens):
        filt.remove_arch(host)
    filt.set_attr(sc.Attr.ACT_BADARCH, default)
    filt.set_attr(sc.Attr.CTL_NNP, 0)
    if len(config["syscalls"]) > 32:
        filt.set_attr(sc.Attr.CTL_OPTIMIZE, 2)
    unresolved: list[str] = []
    for call in config["syscalls"]:
        act = action(call["action"], call.get("errnoRet"))
        if act == default:
            continue
        conditions = [
            sc.Arg(
                arg["index"],
                getattr(sc, arg["op"].removeprefix("SCMP_CMP_")),
                arg["value"],
                arg.get("valueTwo", 0),
            )
            for arg in call.get("args") or ()
        ]
        indexes = [arg["index"] for arg in call.get("args") or ()]
        # runc adds conditions on one argument as separate rules (an OR).
        groups = [[c] for c in conditions] if len(set(indexes)) < len(indexes) else [conditions]
        for name in call["names"]:
            if sc.resolve_syscall(host, name) == -1:  # __NR_SCMP_ERROR: unknown here
                unresolved.append(name)
                continue
            for group in groups:
                filt.add_rule(act, name, *group)
    with os.fdopen(os.memfd_create("envkit-seccomp"), "w+b") as f:
        filt.export_bpf(f)
        f.seek(0)
        return f.read(), sorted(set(unresolved))


def import_libseccomp() -> ModuleType:
    """libseccomp's Python bindings (``python3-seccomp``), also from the system's
    dist-packages when this interpreter is a venv's; a clear error when missing."""
    import importlib  # lazy for start-up: only to compile a filter

    try:
        return importlib.import_module("seccomp")
    except ImportError:
        pass
    if os.path.isdir(DIST_PACKAGES) and DIST_PACKAGES not in sys.path:
        sys.path.append(DIST_PACKAGES)
        try:
            return importlib.import_module("seccomp")
        except ImportError:
            pass
        finally:
            sys.path.remove(DIST_PACKAGES)
    raise RuntimeError_(
        "this capability set has no precompiled seccomp filter, and libseccomp's Python "
        "bindings (module 'seccomp') cannot be imported to compile one",
        hint="install the Debian package python3-seccomp (apt-get install python3-seccomp)",
    )


def _compile_at_run_time(machine: str, caps: Iterable[str]) -> bytes:
    libseccomp = import_libseccomp()
    raw, _ = compile_bpf(oci_config(load_profile(), machine, caps), libseccomp)
    return raw


_preload()
