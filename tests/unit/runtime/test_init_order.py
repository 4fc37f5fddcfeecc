"""The command's last steps before exec (:func:`envkit.runtime.init.exec_command`), in
order, through the fake kernel.

The order is runc's (``libcontainer/standard_init_linux.go`` at 76d9cf5da5, ``Init``):
the bounding set is reduced while the process still holds CAP_SETPCAP, then the user
changes and the capabilities are set (``finalizeNamespace``), ``no_new_privs`` is set,
the parent-death signal restored (a credential change clears it), the fds closed, and
"seccomp as close to execve as possible" when no_new_privs is set, which it always is
in envkit. Each test asserts an exact sequence, so a step moved or dropped fails it.
"""

from __future__ import annotations

import ctypes
import errno
import os

import pytest

from envkit.host.prctl import (
    PR_CAPBSET_DROP,
    PR_SET_SECCOMP,
    SECCOMP_MODE_FILTER,
)
from envkit.runtime import caps, init, seccomp
from envkit.runtime.config import ContainerConfig, ExecConfig
from tests.unit.runtime.call_labels import steps
from tests.unit.runtime.fake_kernel import FakeKernel, ProcessGone
from tests.unit.runtime.reference_tables import root_init_steps

pytestmark = pytest.mark.usefixtures("pid1_dir")


def config(**changes: object) -> ContainerConfig:
    base = ContainerConfig(layers=["/layers/base"], argv=["/app", "serve"], env={"A": "1"})
    return base.replace(**changes)


def run(kernel: FakeKernel, cfg: ContainerConfig | ExecConfig, err_w: int) -> ProcessGone:
    """exec_command with the fake; the way the process ended (exec or exit)."""
    with pytest.raises(ProcessGone) as ended:
        init.exec_command(cfg, err_w, kernel=kernel)
    return ended.value


def test_root_takes_dockers_capabilities_then_no_new_privs_then_the_filter(
    kernel: FakeKernel, err_pipe: tuple[int, int]
) -> None:
    gone = run(kernel, config(), err_pipe[1])
    assert (gone.how, gone.value) == ("execve", "/app")
    assert steps(kernel) == root_init_steps(err_pipe[1])
    execve = kernel.calls[-1]
    assert execve.args[1:] == (["/app", "serve"], {"A": "1"})


def test_the_bounding_set_keeps_dockers_defaults_only(
    kernel: FakeKernel, err_pipe: tuple[int, int]
) -> None:
    run(kernel, config(), err_pipe[1])
    dropped = [
        c.args[1] for c in kernel.calls if c.name == "prctl" and c.args[0] == PR_CAPBSET_DROP
    ]
    assert dropped == [cap for cap in range(caps.last_cap() + 1) if cap not in caps.DEFAULT]
    capset = next(c for c in kernel.calls if c.name == "capset")
    # Effective = permitted = Docker's set; inheritable empty (CVE-2022-24769).
    assert capset.args == (caps.DEFAULT, caps.DEFAULT, frozenset())


def test_another_user_gets_its_groups_and_no_capabilities(
    kernel: FakeKernel, err_pipe: tuple[int, int]
) -> None:
    run(kernel, config(uid=1000, gid=100, groups=(20, 30)), err_pipe[1])
    labels = steps(kernel)
    assert labels[3:7] == [
        "setgroups [20, 30]",
        "setresgid 100 100 100",
        "setresuid 1000 1000 1000",
        "no_new_privs",
    ]
    assert "capset" not in labels  # the kernel clears them when root's ids go


def test_seccomp_unconfined_installs_no_filter_but_keeps_no_new_privs(
    kernel: FakeKernel, err_pipe: tuple[int, int]
) -> None:
    run(kernel, config(seccomp=False), err_pipe[1])
    labels = steps(kernel)
    assert "seccomp filter" not in labels
    assert labels.index("no_new_privs") < labels.index("execve /app")
    assert labels[-2:] == [f"close fds but {sorted({0, 1, 2, err_pipe[1]})}", "execve /app"]


class _Fprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


@pytest.mark.skipif(not seccomp.supported(), reason="no shipped filter for this machine")
@pytest.mark.parametrize(
    ("added", "key"),
    [(frozenset(), "default"), (frozenset({caps.CAP["SYS_PTRACE"]}), "default+SYS_PTRACE")],
)
def test_the_filter_is_dockers_profile_for_the_capabilities(
    kernel: FakeKernel, err_pipe: tuple[int, int], added: frozenset[int], key: str
) -> None:
    capabilities = caps.DEFAULT | added
    seccomp.prepare(caps.seccomp_caps(capabilities))
    run(kernel, config(capabilities=capabilities), err_pipe[1])
    install = kernel.calls[-2]
    assert install.name == "prctl" and install.args[:2] == (PR_SET_SECCOMP, SECCOMP_MODE_FILTER)
    prog = _Fprog.from_address(int(install.args[2]))  # type: ignore[call-overload]
    with open(seccomp.bpf_path(os.uname().machine, key), "rb") as f:
        shipped = f.read()
    assert ctypes.string_at(prog.filter, prog.len * 8) == shipped


def test_exec_command_of_an_exec_config(kernel: FakeKernel, err_pipe: tuple[int, int]) -> None:
    cfg = ExecConfig(argv=["/bin/sh"], env={})
    run(kernel, cfg, err_pipe[1])
    labels = steps(kernel)
    # The same steps but the parent-death signal (an exec'd command is not pid 1).
    assert "die with the parent" not in labels
    assert labels[-4:] == [
        "not dumpable",
        f"close fds but {sorted({0, 1, 2, err_pipe[1]})}",
        "seccomp filter",
        "execve /bin/sh",
    ]


@pytest.mark.parametrize(
    ("call", "err", "message"),
    [
        ("setresuid", errno.EPERM, "1\nuser 1000:0: Operation not permitted"),
        ("capset", errno.EPERM, "1\nuser 0:0: capset: Operation not permitted"),
        ("execve", errno.ENOENT, "127\nexec '/app': No such file or directory"),
        ("execve", errno.EACCES, "126\nexec '/app': Permission denied"),
    ],
)
def test_a_failed_step_is_reported_and_nothing_after_it_runs(
    kernel: FakeKernel, err_pipe: tuple[int, int], call: str, err: int, message: str
) -> None:
    kernel.fail_on(call, lambda args: True, err)
    uid = 1000 if call == "setresuid" else 0
    gone = run(kernel, config(uid=uid), err_pipe[1])
    code, _, _ = message.partition("\n")
    assert (gone.how, gone.value) == ("exit", int(code))
    assert os.read(err_pipe[0], 8192).decode() == message
    failed = next(i for i, c in enumerate(kernel.calls) if c.name == call)
    assert [c.name for c in kernel.calls[failed + 1 :]] == ["write", "exit_process"]
