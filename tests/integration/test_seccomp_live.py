"""The seccomp filter in real processes: a static C probe makes the calls Docker's
profile refuses, in a container (busybox rootfs) and under :func:`seccomp.install` with
another capability set, and reports each result; a run without the filter shows that
the kernel would have answered otherwise."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from envkit.host.prctl import PR_SET_NO_NEW_PRIVS, prctl
from envkit.runtime import seccomp
from envkit.runtime.config import ContainerConfig
from envkit.runtime.spawn import run
from tests.integration.conftest import Scratch

pytestmark = [
    pytest.mark.rootless,
    pytest.mark.skipif(not seccomp.supported(), reason="no seccomp filter for this machine"),
]

EPERM, ENOSYS, ENOTTY = 1, 38, 25

PROBE_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static void report(const char *name, long r) {
    printf("%s %d\n", name, r < 0 ? errno : 0);
}

#if defined(__x86_64__)
/* An i386 system call from a 64-bit process: -errno, or the result. */
static long int80(long nr, long a, long b, long c) {
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    return r;
}
#endif

int main(void) {
    char c = 'x';
    setvbuf(stdout, NULL, _IONBF, 0);
    report("getpid", syscall(SYS_getpid));
    report("inet", syscall(SYS_socket, 2L, 1L, 0L));
    report("vsock", syscall(SYS_socket, 40L, 1L, 0L));
    report("vsock_high", syscall(SYS_socket, (1L << 32) | 40L, 1L, 0L));
    report("alg", syscall(SYS_socket, 38L, 5L, 0L));
    report("tcgets", syscall(SYS_ioctl, 0L, 0x5401L, &c));
    report("tiocsti", syscall(SYS_ioctl, 0L, 0x5412L, &c));
    report("tiocsti_high", syscall(SYS_ioctl, 0L, (1L << 32) | 0x5412L, &c));
    report("tioclinux", syscall(SYS_ioctl, 0L, 0x541CL, &c));
    report("kcmp", syscall(SYS_kcmp, (long)getpid(), (long)getpid(), 0L, 0L, 0L));
    report("pidfd_getfd", syscall(SYS_pidfd_getfd, -1L, 0L, 0L));
    report("process_madvise", syscall(SYS_process_madvise, -1L, 0L, 0L, 0L, 0L));
    report("mbind", syscall(SYS_mbind, 0L, 0L, 0L, 0L, 0L, 0L));
    report("set_mempolicy", syscall(SYS_set_mempolicy, 0L, 0L, 0L));
    report("migrate_pages", syscall(SYS_migrate_pages, 0L, 0L, 0L, 0L));
    report("future", syscall(1000L));
    report("clone3", syscall(SYS_clone3, 0L, 0L));
#if defined(__x86_64__)
    long r = int80(20, 0, 0, 0);                  /* i386 getpid */
    printf("i386_getpid %ld\n", r < 0 ? -r : 0L);
    r = int80(359, 40, 1, 0);                     /* i386 socket(AF_VSOCK) */
    printf("i386_vsock %ld\n", r < 0 ? -r : 0L);
    r = int80(359, 2, 1, 0);                      /* i386 socket(AF_INET) */
    printf("i386_inet %ld\n", r < 0 ? -r : 0L);
    r = int80(21, 0, 0, 0);                       /* i386 mount(NULL, ...) */
    printf("i386_mount %ld\n", r < 0 ? -r : 0L);
#endif
    return 0;
}
"""
#: Refused by Docker's profile (and envkit's ioctl and socket rules): EPERM.
REFUSED = (
    "vsock",
    "vsock_high",
    "alg",
    "tiocsti",
    "tiocsti_high",
    "tioclinux",
    "kcmp",
    "pidfd_getfd",
    "process_madvise",
    "mbind",
    "set_mempolicy",
    "migrate_pages",
    "future",
)


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc missing: apt-get install gcc libc6-dev")
    work = tmp_path_factory.mktemp("seccomp-probe")
    (work / "probe.c").write_text(PROBE_C)
    out = work / "probe"
    done = subprocess.run(
        [gcc, "-static", "-O2", "-o", str(out), str(work / "probe.c")],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot build a static probe: {done.stderr.strip()[-300:]}")
    return out


def results(text: str) -> dict[str, int]:
    return {name: int(value) for name, value in (line.split() for line in text.splitlines())}


def in_container(scratch: Scratch, probe: Path, tmp_path: Path, **kw: Any) -> dict[str, int]:
    shutil.copy2(probe, scratch.upper / "probe")
    out = tmp_path / "out.txt"
    with open(os.devnull, "rb") as stdin, open(out, "wb") as f:
        config = ContainerConfig(
            layers=[str(scratch.lower)],
            upper_dir=str(scratch.upper),
            work_dir=str(scratch.work),
            argv=["/probe"],
            stdio=(stdin.fileno(), f.fileno(), f.fileno()),
            **kw,
        )
        code = run(config)
    text = out.read_text()
    assert code == 0, text
    return results(text)


def test_the_container_gets_dockers_refusals(scratch: Scratch, probe: Path, tmp_path: Path) -> None:
    got = in_container(scratch, probe, tmp_path)
    assert got["getpid"] == 0
    assert got["inet"] == 0
    assert got["tcgets"] == ENOTTY  # allowed: stdin is /dev/null, not a terminal
    wrong = {name: got[name] for name in REFUSED if got[name] != EPERM}
    assert not wrong, f"not refused with EPERM: {wrong}"
    assert got["clone3"] == ENOSYS  # libc falls back to clone


@pytest.mark.skipif(platform.machine() != "x86_64", reason="i386 calls exist on x86_64 only")
def test_i386_calls_are_filtered_too(scratch: Scratch, probe: Path, tmp_path: Path) -> None:
    got = in_container(scratch, probe, tmp_path)
    if got["i386_getpid"] == ENOSYS:
        pytest.skip("this kernel has no i386 emulation (IA32_EMULATION)")
    assert got["i386_getpid"] == 0
    assert got["i386_inet"] == 0
    assert got["i386_vsock"] == EPERM
    assert got["i386_mount"] == EPERM


def test_without_the_filter_the_kernel_answers_otherwise(
    scratch: Scratch, probe: Path, tmp_path: Path
) -> None:
    # The control: the EPERMs above are the filter's, not the kernel's.
    got = in_container(scratch, probe, tmp_path, seccomp=False)
    assert got["tiocsti"] == got["tiocsti_high"] == got["tioclinux"] == ENOTTY
    assert got["future"] == ENOSYS
    assert got["set_mempolicy"] == 0
    assert got["vsock"] != EPERM and got["alg"] != EPERM
    # The kernel reads socket's family as an int: the high bits change nothing.
    assert got["vsock_high"] == got["vsock"]


def _with_filter(probe: Path, caps: frozenset[str] | None) -> dict[str, int]:
    seccomp.prepare(caps)

    def confine() -> None:
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        seccomp.install(caps)

    with open(os.devnull, "rb") as stdin:
        done = subprocess.run(
            [str(probe)], stdin=stdin, capture_output=True, text=True, preexec_fn=confine
        )
    assert done.returncode == 0, done.stderr
    return results(done.stdout)


def test_install_with_an_added_capability(probe: Path) -> None:
    default = _with_filter(probe, None)
    ptrace = _with_filter(probe, seccomp.DEFAULT_CAPS | {"CAP_SYS_PTRACE"})
    nice = _with_filter(probe, seccomp.DEFAULT_CAPS | {"SYS_NICE"})
    assert default["kcmp"] == EPERM and ptrace["kcmp"] != EPERM
    assert default["set_mempolicy"] == EPERM and nice["set_mempolicy"] == 0
    for got in (default, ptrace, nice):
        assert got["tiocsti"] == got["vsock"] == got["future"] == EPERM
