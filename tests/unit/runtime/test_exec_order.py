"""``envkit exec``'s helper (:func:`envkit.runtime.nsexec._helper`) in order, through
the fake kernel.

The reference is runc's nsexec (``libcontainer/nsenter/nsexec.c``) as
``envkit.runtime.nsexec`` describes it: the helper makes itself unreachable from the
container before it joins anything (not dumpable, command line wiped, fds closed), joins
the user namespace first (it grants the capabilities the other joins need) and the
others after, becomes container root, and forks so that the command is inside the pid
namespace; the command then takes the same last steps as a container's own
(test_init_order.py).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from envkit.runtime import nsexec
from envkit.runtime.config import ExecConfig
from tests.unit.runtime.call_labels import label_of
from tests.unit.runtime.fake_kernel import FakeKernel, ProcessGone


@pytest.fixture
def namespace_fds(tmp_path: Path) -> Iterator[list[int]]:
    """Seven open fds standing for /proc/PID/ns/{user,mnt,pid,uts,ipc,net,cgroup}."""
    paths = [tmp_path / f"ns-{ns}" for ns in nsexec.NAMESPACES]
    for path in paths:
        path.touch()
    fds = [os.open(path, os.O_RDONLY) for path in paths]
    yield fds
    # The helper closes each after joining it: close only those still ours (a number
    # may have been reused since).
    for fd, path in zip(fds, paths, strict=True):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                os.close(fd)


def helper(kernel: FakeKernel, fds: list[int], err_w: int) -> ProcessGone:
    with pytest.raises(ProcessGone) as ended:
        nsexec._helper(ExecConfig(argv=["/bin/sh", "-c", "id"]), fds, err_w, None, kernel)
    return ended.value


def test_the_helper_hides_itself_then_joins_user_first(
    kernel: FakeKernel, namespace_fds: list[int], err_pipe: tuple[int, int]
) -> None:
    gone = helper(kernel, namespace_fds, err_pipe[1])
    assert (gone.how, gone.value) == ("execve", "/bin/sh")
    labels = [label_of(c) for c in kernel.calls]
    fork = labels.index("fork")
    assert labels[: fork + 1] == [
        "not dumpable",  # before anything of the container can see it
        "hide_command_line",
        f"close fds but {sorted({0, 1, 2, err_pipe[1], *namespace_fds})}",
        *(f"setns {fd} 0" for fd in namespace_fds),  # in NAMESPACES order: user first
        "setgroups []",
        "setresgid 0 0 0",
        "setresuid 0 0 0",
        "not dumpable",  # a credential change may reset it
        "fork",  # into the pid namespace
    ]
    assert nsexec.NAMESPACES[0] == "user"
    # Then the command's own last steps, the filter last, without the parent-death
    # signal (the helper waits for the command and passes signals on).
    assert labels[fork + 1] == "setsid"
    assert labels[-2:] == ["seccomp filter", "execve /bin/sh"]
    assert "die with the parent" not in labels


def test_a_namespace_that_cannot_be_joined_stops_the_exec(
    kernel: FakeKernel, namespace_fds: list[int], err_pipe: tuple[int, int]
) -> None:
    pid_fd = namespace_fds[nsexec.NAMESPACES.index("pid")]
    kernel.fail_on("setns", lambda args: args[0] == pid_fd)
    gone = helper(kernel, namespace_fds, err_pipe[1])
    assert (gone.how, gone.value) == ("exit", 1)
    report = os.read(err_pipe[0], 8192).decode()
    assert report == "1\njoin the pid namespace: setns: Operation not permitted"
    failed = next(i for i, c in enumerate(kernel.calls) if c.args[:1] == (pid_fd,))
    assert kernel.names()[failed + 1 :] == ["write", "exit_process"]


def test_a_single_id_map_may_deny_setgroups(
    kernel: FakeKernel, namespace_fds: list[int], err_pipe: tuple[int, int]
) -> None:
    kernel.fail_on("setgroups", lambda args: True, errno.EPERM)
    gone = helper(kernel, namespace_fds, err_pipe[1])
    assert gone.how == "execve"  # no groups to drop: the exec goes on
