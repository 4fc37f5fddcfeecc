"""The shipped seccomp filters against Docker's default profile, run in a BPF interpreter
on synthetic system calls of every architecture they cover (x86_64 with i386 and x32,
aarch64 with arm), whatever the host's architecture."""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from envkit.errors import RuntimeError_
from envkit.runtime import caps, seccomp
from tests.seccomp_bpf import AUDIT_ARCH, X32_SYSCALL_BIT, parse, run, seccomp_data, verdict
from tests.unit.fresh_imports import loaded_after

ROOT = Path(__file__).resolve().parents[3]
DATA = Path(__file__).parent / "data"
PROFILE: dict[str, Any] = json.loads(Path(seccomp.PROFILE_DIR, "default.json").read_text())
INDEX: dict[str, Any] = json.loads(Path(seccomp.PROFILE_DIR, "index.json").read_text())
GOARCH = {"x86_64": "amd64", "aarch64": "arm64"}
SUBARCHES = {"x86_64": ("x86_64", "x86", "x32"), "aarch64": ("aarch64", "arm")}
#: Calls whose verdict depends on their arguments: tested one by one below.
ARG_RULED = {"clone", "ioctl", "personality", "socket"}
EPERM, ENOSYS = "ERRNO(1)", "ERRNO(38)"

FILTERS = [
    (machine, key, frozenset(entry["caps"]))
    for machine, info in sorted(INDEX["machines"].items())
    for key, entry in sorted(info["filters"].items())
]


def program(machine: str, key: str = "default") -> list[tuple[int, int, int, int]]:
    return parse(Path(seccomp.bpf_path(machine, key)).read_bytes())


def table(arch: str) -> dict[str, int]:
    names: dict[str, int] = json.loads((DATA / f"seccomp_syscalls_{arch}.json").read_text())
    return names


def expected(machine: str, have: frozenset[str]) -> dict[str, str]:
    """What Docker's profile says of each call without argument rules, for capabilities
    ``have`` (an independent reading of the profile, as moby's setupSeccomp does it)."""
    goarch = GOARCH[machine]
    out: dict[str, str] = {}
    for call in PROFILE["syscalls"]:
        inc, exc = call.get("includes") or {}, call.get("excludes") or {}
        if goarch in exc.get("arches", []) or any(c in have for c in exc.get("caps", [])):
            continue
        if inc.get("arches") and goarch not in inc["arches"]:
            continue
        if not all(c in have for c in inc.get("caps", [])) or call.get("args"):
            continue
        if call["action"] == "SCMP_ACT_ALLOW":
            action = "ALLOW"
        else:
            assert call["action"] == "SCMP_ACT_ERRNO"
            action = f"ERRNO({call.get('errnoRet', PROFILE['defaultErrnoRet'])})"
        for name in call["names"]:
            assert out.setdefault(name, action) == action, name
    return out


def numbers(arch: str) -> Iterator[int]:
    """Every number tried: the whole range of today's tables and far beyond."""
    base = X32_SYSCALL_BIT if arch == "x32" else 0
    yield from (base + n for n in range(1100))
    if arch == "arm":
        yield from range(0x0F0000, 0x0F0010)
    yield from (base + 0x3FFF, 0x7FFFFFFF, -1 & 0xFFFFFFFF if base == 0 else base + 0xFFFF)


@pytest.mark.parametrize(
    ("machine", "key", "have"), FILTERS, ids=[f[0] + "-" + f[1] for f in FILTERS]
)
def test_every_system_call_gets_what_dockers_profile_says(
    machine: str, key: str, have: frozenset[str]
) -> None:
    prog = program(machine, key)
    wanted = expected(machine, have | seccomp.DEFAULT_CAPS)
    for arch in SUBARCHES[machine]:
        names = table(arch)
        by_number: dict[int, list[str]] = {}
        for name, number in names.items():
            by_number.setdefault(number, []).append(name)
        assert set(wanted) - ARG_RULED - set(names) <= set(_absent(arch)), arch
        wrong = []
        for number in numbers(arch):
            calls = by_number.get(number, [])
            if ARG_RULED & set(calls):
                continue
            want = {wanted.get(name, EPERM) for name in calls} or {EPERM}
            assert len(want) == 1, (arch, calls)
            nr = number - X32_SYSCALL_BIT if arch == "x32" else number
            got = verdict(prog, arch, nr if nr < 0x80000000 else nr - (1 << 32))
            if got != want.pop():
                wrong.append((arch, number, calls, got))
        assert not wrong, wrong


def _absent(arch: str) -> list[str]:
    """Names of the profile with no number on ``arch`` in libseccomp's table: calls of
    other architectures, and those this libseccomp does not know (left to the default
    action, as runc leaves them)."""
    names = table(arch)
    return [n for c in PROFILE["syscalls"] for n in c["names"] if n not in names]


def test_the_unknown_names_are_only_newer_calls_and_listed() -> None:
    assert set(INDEX["machines"]) == set(SUBARCHES)
    for machine, info in INDEX["machines"].items():
        unknown = set(info["unresolved"])
        for arch in SUBARCHES[machine]:
            assert unknown.isdisjoint(table(arch)), arch
        # Calls that came after libseccomp 2.5.4; a newer libseccomp knows them.
        assert unknown <= {
            "getxattrat",
            "listmount",
            "listxattrat",
            "lsm_get_self_attr",
            "lsm_list_modules",
            "lsm_set_self_attr",
            "mseal",
            "removexattrat",
            "riscv_hwprobe",
            "setxattrat",
            "statmount",
            "uretprobe",
        }


def nr(arch: str, name: str) -> int:
    number = table(arch)[name]
    return number - X32_SYSCALL_BIT if arch == "x32" else number


CLONE_NEWUSER = 0x10000000
CLONE_NEWNS = 0x00020000
PLAIN_CLONE = 0x01200011  # fork(): CLONE_CHILD_SETTID|CLONE_CHILD_CLEARTID|SIGCHLD
AF_INET, AF_NETLINK, AF_ALG, AF_VSOCK = 2, 16, 38, 40
TIOCSTI, TIOCLINUX, TCGETS = 0x5412, 0x541C, 0x5401
ALL_ARCHES = [(m, a) for m in SUBARCHES for a in SUBARCHES[m]]


@pytest.mark.parametrize(("machine", "arch"), ALL_ARCHES)
def test_clone_without_namespaces_only(machine: str, arch: str) -> None:
    prog = program(machine)
    clone = nr(arch, "clone")
    assert verdict(prog, arch, clone, PLAIN_CLONE) == "ALLOW"
    assert verdict(prog, arch, clone, 0x3D0F00) == "ALLOW"  # pthread_create's flags
    assert verdict(prog, arch, clone, PLAIN_CLONE | CLONE_NEWUSER) == EPERM
    assert verdict(prog, arch, clone, CLONE_NEWNS) == EPERM
    assert verdict(prog, arch, nr(arch, "clone3"), 0) == ENOSYS  # libc falls back to clone
    admin = program(machine, "default+SYS_ADMIN")
    assert verdict(admin, arch, clone, CLONE_NEWUSER) == "ALLOW"
    assert verdict(admin, arch, nr(arch, "clone3"), 0) == "ALLOW"


@pytest.mark.parametrize(("machine", "arch"), ALL_ARCHES)
def test_socket_refuses_vsock_and_alg_on_the_low_word(machine: str, arch: str) -> None:
    prog = program(machine)
    socket = nr(arch, "socket")
    for family in (AF_INET, AF_NETLINK, 0, 37, 39, 41, 45, 0xFFFFFFFF):
        assert verdict(prog, arch, socket, family, 1, 0) == "ALLOW", family
    for family in (AF_VSOCK, AF_ALG):
        assert verdict(prog, arch, socket, family, 1, 0) == EPERM
        # The kernel reads an int: Docker's 64-bit ranges would let these through.
        assert verdict(prog, arch, socket, family | 1 << 32, 1, 0) == EPERM
        assert verdict(prog, arch, socket, family | 0xFFFFFFFF << 32, 1, 0) == EPERM


def test_i386_socketcall_is_allowed_as_in_docker() -> None:
    # libseccomp gives socketcall(SYS_SOCKET) an ALLOW for socket's rules, and Docker's
    # profile allows socketcall outright: the family behind its pointer is not seen
    # (moby/profiles reverted blocking it). Documented in docs/dev/seccomp.md.
    assert verdict(program("x86_64"), "x86", nr("x86", "socketcall"), 1) == "ALLOW"
    assert "socketcall" not in table("arm")  # EABI has none


@pytest.mark.parametrize(("machine", "arch"), ALL_ARCHES)
def test_personality_values_of_the_profile(machine: str, arch: str) -> None:
    prog = program(machine)
    call = nr(arch, "personality")
    for persona in (0, 8, 0x20000, 0x20008, 0xFFFFFFFF):
        assert verdict(prog, arch, call, persona) == "ALLOW", persona
    for persona in (1, 0x0040000, 0x0400000, 0x8):
        want = "ALLOW" if persona == 8 else EPERM
        assert verdict(prog, arch, call, persona) == want, persona


@pytest.mark.parametrize(("machine", "arch"), ALL_ARCHES)
@pytest.mark.parametrize("key", ["default", "default+SYS_ADMIN", "default+SYS_TTY_CONFIG"])
def test_ioctl_refuses_tiocsti_and_tioclinux_on_the_low_word(
    machine: str, arch: str, key: str
) -> None:
    prog = program(machine, key)
    ioctl = nr(arch, "ioctl")
    for request in (TCGETS, 0x5413, 0x5411, 0x541B, 0x541D, 0x802C542A, 0, 0xFFFFFFFF):
        assert verdict(prog, arch, ioctl, 0, request) == "ALLOW", hex(request)
        assert verdict(prog, arch, ioctl, 0, request | 0xFFFFFFFF << 32) == "ALLOW"
    for request in (TIOCSTI, TIOCLINUX):
        for high in (0, 1 << 32, 0xFFFFFFFF << 32, 0x5412 << 40):
            assert verdict(prog, arch, ioctl, 0, request | high) == EPERM, hex(request | high)


def test_masked_cover_matches_everything_but_the_excluded() -> None:
    cover = seccomp.masked_cover([TIOCSTI, TIOCLINUX])
    assert len(cover) == 34

    def allowed(x: int) -> bool:
        return any(x & mask == value for mask, value in cover)

    for x in [*range(0x5400, 0x5440), 0, 0xFFFFFFFF, 0x80005412, 0x00015412]:
        assert allowed(x) is (x not in (TIOCSTI, TIOCLINUX)), hex(x)
    assert seccomp.masked_cover([]) == [(0, 0)]


def test_dockers_socket_rules_refuse_exactly_alg_and_vsock() -> None:
    # envkit's low-word socket rules stand for Docker's: the same families on 32 bits.
    ops = {"SCMP_CMP_LT": int.__lt__, "SCMP_CMP_EQ": int.__eq__, "SCMP_CMP_GT": int.__gt__}
    rules = [c["args"] for c in PROFILE["syscalls"] if c["names"] == ["socket"]]
    refused = {
        family
        for family in range(1024)
        if not any(all(ops[a["op"]](family, a["value"]) for a in args) for args in rules)
    }
    assert refused == set(seccomp.REFUSED_SOCKET_FAMILIES)


@pytest.mark.parametrize("machine", sorted(SUBARCHES))
def test_cap_add_allows_what_the_profile_says(machine: str) -> None:
    arch = machine
    default = program(machine)
    ptrace = program(machine, "default+SYS_PTRACE")
    for name in ("kcmp", "pidfd_getfd", "process_madvise"):
        assert verdict(default, arch, nr(arch, name)) == EPERM, name
        assert verdict(ptrace, arch, nr(arch, name)) == "ALLOW", name
    for name in ("ptrace", "process_vm_readv", "process_vm_writev"):
        # Allowed to all on kernels >= 4.8 (the profile's minKernel, taken as satisfied).
        assert verdict(default, arch, nr(arch, name)) == "ALLOW", name
        assert verdict(ptrace, arch, nr(arch, name)) == "ALLOW", name
    admin = program(machine, "default+SYS_ADMIN")
    for name in ("mount", "umount2", "unshare", "setns", "bpf", "fsopen", "sethostname"):
        assert verdict(default, arch, nr(arch, name)) == EPERM, name
        assert verdict(admin, arch, nr(arch, name)) == "ALLOW", name
    assert verdict(admin, arch, nr(arch, "pivot_root")) == EPERM  # with no capability
    nice = program(machine, "default+SYS_NICE")
    for name in ("mbind", "set_mempolicy", "get_mempolicy"):
        assert verdict(default, arch, nr(arch, name)) == EPERM, name
        assert verdict(nice, arch, nr(arch, name)) == "ALLOW", name
    for name in ("migrate_pages", "move_pages"):  # no capability opens these
        assert verdict(nice, arch, nr(arch, name)) == EPERM, name


def test_calls_docker_refuses_are_refused() -> None:
    prog = program("x86_64")
    for name in (
        "kcmp",
        "pidfd_getfd",
        "process_madvise",
        "mbind",
        "set_mempolicy",
        "migrate_pages",
        "keyctl",
        "add_key",
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "io_uring_setup",
        "open_tree",
        "move_mount",
        "kexec_load",
        "init_module",
    ):
        for arch in SUBARCHES["x86_64"]:
            if name in table(arch):
                assert verdict(prog, arch, nr(arch, name)) == EPERM, (arch, name)
    for future in (1000, 467, 500):
        assert verdict(prog, "x86_64", future) == EPERM


@pytest.mark.parametrize("machine", sorted(SUBARCHES))
def test_another_architecture_gets_the_default_action(machine: str) -> None:
    prog = program(machine)
    read = 0 if machine == "x86_64" else 63
    for token in (
        0x12345678,
        0,
        *(t for a, t in AUDIT_ARCH.items() if a not in SUBARCHES[machine]),
    ):
        assert run(prog, seccomp_data(read, token)) == 0x00050001, hex(token)


def test_i386_calls_follow_the_profile() -> None:
    prog = program("x86_64")
    # Allowed by name on every architecture of the filter.
    for name in ("read", "mmap2", "_llseek", "socketcall", "ipc", "modify_ldt", "arch_prctl"):
        assert verdict(prog, "x86", nr("x86", name)) == "ALLOW", name
    for name in ("mount", "kexec_load", "vm86", "vm86old", "keyctl"):
        assert verdict(prog, "x86", nr("x86", name)) == EPERM, name


def test_profile_capabilities_and_index_are_consistent() -> None:
    named = {
        cap
        for call in PROFILE["syscalls"]
        for side in ("includes", "excludes")
        for cap in (call.get(side) or {}).get("caps", [])
    }
    assert named == seccomp.PROFILE_CAPS
    assert set(INDEX["profile_caps"]) == named
    assert set(INDEX["default_caps"]) == seccomp.DEFAULT_CAPS
    assert {"CAP_" + caps.NAMES[c] for c in caps.DEFAULT} == seccomp.DEFAULT_CAPS
    assert INDEX["source"]["commit"] == seccomp.PROFILE_COMMIT
    assert set(INDEX["machines"]) == set(seccomp.ARCHES)
    for machine, info in INDEX["machines"].items():
        keys = {"default"} | {
            "default+" + c[4:] for c in seccomp.PROFILE_CAPS - seccomp.DEFAULT_CAPS
        }
        assert set(info["filters"]) == keys
        for key, entry in info["filters"].items():
            raw = Path(seccomp.PROFILE_DIR, entry["file"]).read_bytes()
            assert entry["file"] == os.path.basename(seccomp.bpf_path(machine, key))
            assert len(raw) // 8 == entry["instructions"] < 4096
    shipped = {p.name for p in Path(seccomp.PROFILE_DIR).glob("*.bpf")}
    listed = {e["file"] for i in INDEX["machines"].values() for e in i["filters"].values()}
    assert shipped == listed


def test_filter_keys_name_the_shipped_files() -> None:
    default = seccomp.DEFAULT_CAPS
    assert seccomp.filter_key(None) == "default"
    assert seccomp.filter_key(default) == "default"
    assert seccomp.filter_key(default | {"CAP_NET_ADMIN", "NET_RAW"}) == "default"
    assert seccomp.filter_key(default | {"sys_ptrace"}) == "default+SYS_PTRACE"
    assert seccomp.filter_key(default | {"CAP_SYS_PTRACE", "SYS_ADMIN"}) == (
        "caps+SYS_ADMIN+SYS_CHROOT+SYS_PTRACE"
    )
    assert seccomp.filter_key(default - {"CAP_SYS_CHROOT"}) == "caps"
    assert seccomp.normalize_caps(["sys_admin", "CAP_KILL"]) == {"CAP_SYS_ADMIN", "CAP_KILL"}
    assert seccomp.profile_name().startswith("docker-default (moby/profiles 3c2832431472")


# With libseccomp: the shipped bytes are what the generator makes today.


def _libseccomp() -> ModuleType:
    try:
        return seccomp.import_libseccomp()
    except RuntimeError_ as exc:
        pytest.skip(f"libseccomp's Python bindings are not importable ({exc.message})")


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_seccomp", ROOT / "scripts/gen_seccomp.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_regenerating_gives_the_shipped_files() -> None:
    _libseccomp()
    gen = _generator()
    version = gen.libseccomp_version()
    if version != INDEX["libseccomp"]:
        pytest.skip(f"libseccomp {version} here; the files were made by {INDEX['libseccomp']}")
    outputs = gen.outputs()
    # Every shipped filter comes out of the generator (none left over from an older run).
    shipped = ROOT / "envkit/runtime/seccomp_profile"
    made = {str(p.relative_to(ROOT)) for p in shipped.iterdir() if p.suffix == ".bpf"} | {
        str((shipped / "index.json").relative_to(ROOT))
    }
    assert made <= set(outputs), sorted(made - set(outputs))
    for rel, data in outputs.items():
        assert (ROOT / rel).read_bytes() == data, f"{rel} is stale: run scripts/gen_seccomp.py"


def test_an_unusual_capability_set_is_compiled_at_run_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sc = _libseccomp()
    monkeypatch.setattr(seccomp, "_prepared", {})
    monkeypatch.setattr(os, "uname", lambda: _Uname("x86_64"))
    both = seccomp.DEFAULT_CAPS | {"CAP_SYS_ADMIN", "CAP_SYS_PTRACE"}
    seccomp.prepare(both)
    fprog, buffer = seccomp._prepared[seccomp.filter_key(both)]
    raw = ctypes.string_at(buffer, fprog.len * 8)
    compiled, _ = seccomp.compile_bpf(seccomp.oci_config(PROFILE, "x86_64", both), sc)
    assert raw == compiled
    prog = parse(raw)
    assert verdict(prog, "x86_64", 101) == "ALLOW"  # ptrace
    assert verdict(prog, "x86_64", 165) == "ALLOW"  # mount
    assert verdict(prog, "x86_64", 16, 0, TIOCSTI) == EPERM


def test_without_libseccomp_an_unusual_set_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_module(name: str, package: str | None = None) -> ModuleType:
        raise ImportError(name)

    monkeypatch.setattr(seccomp, "_prepared", {})
    monkeypatch.setattr(importlib, "import_module", no_module)
    monkeypatch.setattr(seccomp, "DIST_PACKAGES", "/nonexistent")
    monkeypatch.setattr(os, "uname", lambda: _Uname("x86_64"))
    seccomp.prepare()  # the shipped files need no libseccomp
    with pytest.raises(RuntimeError_, match="python3-seccomp"):
        seccomp.prepare(seccomp.DEFAULT_CAPS - {"CAP_SYS_CHROOT"})


def test_an_architecture_without_a_filter_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seccomp, "_prepared", {})
    monkeypatch.setattr(os, "uname", lambda: _Uname("riscv64"))
    assert not seccomp.supported()
    with pytest.raises(RuntimeError_, match="riscv64") as caught:
        seccomp.prepare()
    assert "seccomp=unconfined" in str(caught.value)


class _Uname:
    def __init__(self, machine: str) -> None:
        self.machine = machine


def test_preparing_loads_no_heavy_module(tmp_path: Path) -> None:
    code = "from envkit.runtime import seccomp\nseccomp.prepare()\n"
    heavy = ("typing", "dataclasses", "json", "pathlib", "subprocess", "tempfile", "importlib")
    if not seccomp.supported():
        pytest.skip(f"no shipped filter for {os.uname().machine}: prepare() refuses")
    assert loaded_after(code, tmp_path, heavy) == []
