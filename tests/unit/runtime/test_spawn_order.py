"""A container's start from the intermediate's fork to the command's exec, through the
fake kernel: namespaces, the id-map handshake, mount propagation, the root file system,
pid 1's privileges.

The reference order is runc's (``libcontainer/rootfs_linux.go`` and
``standard_init_linux.go`` at 76d9cf5da5): the mount namespace's root is made
non-shared (``prepareRoot``: ``MS_SLAVE|MS_REC`` by default; envkit uses
``MS_PRIVATE|MS_REC``, which also stops propagation from the host) before any mount;
the mounts are made under the new root; ``pivot_root(".", ".")`` is followed by a lazy
unmount of the old root (``pivotRoot``); the hostname is set in the new UTS namespace
(``Init``); the user's privileges and the seccomp filter come last (test_init_order.py).
The caller writes the id maps while the intermediate waits (user_namespaces(7)).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from envkit.host import idmap
from envkit.host.syscalls import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    MNT_DETACH,
    MS_BIND,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
)
from envkit.runtime import spawn
from envkit.runtime.config import ContainerConfig
from tests.unit.runtime.call_labels import label_of
from tests.unit.runtime.fake_kernel import Call, FakeKernel, ProcessGone
from tests.unit.runtime.reference_tables import root_init_steps

ALL_NAMESPACES = (
    CLONE_NEWUSER
    | CLONE_NEWNS
    | CLONE_NEWPID
    | CLONE_NEWUTS
    | CLONE_NEWIPC
    | CLONE_NEWNET
    | CLONE_NEWCGROUP
)


class Pipes:
    """The start's three pipes, both ends: sync (intermediate -> caller), go (caller ->
    intermediate), err (close-on-exec in the real start)."""

    def __init__(self) -> None:
        self.sync_r, self.sync_w = os.pipe()
        self.go_r, self.go_w = os.pipe()
        self.err_r, self.err_w = os.pipe()
        self._fds = (self.sync_r, self.sync_w, self.go_r, self.go_w, self.err_r, self.err_w)
        self._inodes = {fd: os.fstat(fd).st_ino for fd in self._fds}

    def close(self) -> None:
        """Close the ends the code under test left open (not a reused number)."""
        for fd in self._fds:
            with contextlib.suppress(OSError):
                if os.fstat(fd).st_ino == self._inodes[fd]:
                    os.close(fd)


@pytest.fixture
def pipes(tmp_path: Path) -> Iterator[Pipes]:
    opened = set(os.listdir("/proc/self/fd"))
    p = Pipes()
    yield p
    # The O_PATH descriptors the intermediate opened for the layers (in tmp_path).
    for fd in set(os.listdir("/proc/self/fd")) - opened:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path)):
                os.close(int(fd))
    p.close()


def container(layer: Path, **changes: object) -> ContainerConfig:
    return ContainerConfig(
        layers=[str(layer)],
        argv=["/app"],
        upper_dir=str(layer.parent / "upper"),
        work_dir=str(layer.parent / "work"),
        hostname="web",
    ).replace(**changes)


def start(
    kernel: FakeKernel,
    config: ContainerConfig,
    pipes: Pipes,
    state: Path,
    *,
    go: bytes = b"g",
    console: socket.socket | None = None,
) -> ProcessGone:
    """The intermediate, then (fork: the child's side) pid 1, with the caller's "go"
    already sent; how the process ended."""
    if go:
        os.write(pipes.go_w, go)
    else:
        os.close(pipes.go_w)  # the caller failed and closed its end
    with pytest.raises(ProcessGone) as ended:
        spawn._monitor(
            config, str(state), pipes.sync_w, pipes.go_r, pipes.err_w, os.getppid(), console,
            kernel=kernel,
        )  # fmt: skip
    return ended.value


def start_steps(kernel: FakeKernel, state: Path) -> list[str]:
    """The calls' labels, the mounts under the new root (test_rootfs_mounts.py) and the
    bounding-set drops (test_init_order.py) each collapsed into one step."""
    labels: list[str] = []
    for call in kernel.calls:
        label = label_of(call)
        if label == "drop bounding capabilities" and labels[-1:] == [label]:
            continue
        if call.name == "mount" and str(call.args[1]).startswith("root"):
            label = "mount the root file system"
            if labels[-1:] == [label]:
                continue
        labels.append(label.replace(str(state), "STATE"))
    return labels


def first(kernel: FakeKernel, name: str) -> int:
    return next(i for i, c in enumerate(kernel.calls) if c.name == name)


def test_the_start_in_order(kernel: FakeKernel, layer: Path, pipes: Pipes, pid1_dir: Path) -> None:
    gone = start(kernel, container(layer), pipes, pid1_dir)
    assert (gone.how, gone.value) == ("execve", "/app")
    assert start_steps(kernel, pid1_dir) == [
        # the intermediate
        f"close fds but {sorted({0, 1, 2, pipes.sync_w, pipes.go_r, pipes.err_w})}",
        "die with the parent",
        f"unshare {ALL_NAMESPACES}",
        f"write {pipes.sync_w} b'u'",  # "my namespaces exist": the caller writes the maps
        f"read {pipes.go_r} 1",  # and says "go": nothing is mounted before
        f"mount None / None {MS_REC | MS_PRIVATE} None",
        "mount tmpfs STATE tmpfs 0 mode=0700,uid=0,gid=0",
        "chdir STATE",
        "setgroups []",  # container root: files it makes are never host root's
        "setresgid 0 0 0",
        "setresuid 0 0 0",
        "die with the parent",  # the credential change cleared it
        "fork",
        # pid 1
        "not dumpable",
        "die with the parent",
        "mount the root file system",
        "sethostname web",
        "link_up lo",
        "chdir root",
        "pivot_root . .",
        f"umount . {MNT_DETACH}",
        "chdir /",
        *root_init_steps(pipes.err_w),
    ]


def test_the_mount_namespace_is_private_before_anything_is_mounted(
    kernel: FakeKernel, layer: Path, pipes: Pipes, pid1_dir: Path
) -> None:
    start(kernel, container(layer), pipes, pid1_dir)
    mounts = [c for c in kernel.calls if c.name == "mount"]
    assert mounts[0] == Call("mount", (None, "/", None, MS_REC | MS_PRIVATE, None))
    unshare = kernel.calls[first(kernel, "unshare")]
    assert unshare.args[0] == ALL_NAMESPACES  # in the new mount namespace, not the host's
    assert first(kernel, "unshare") < kernel.calls.index(mounts[0])


def test_every_mount_is_made_inside_the_state_dir_and_none_is_shared(
    kernel: FakeKernel, layer: Path, pipes: Pipes, pid1_dir: Path
) -> None:
    start(kernel, container(layer), pipes, pid1_dir)
    for call in kernel.calls[first(kernel, "fork") :]:
        if call.name == "mount":
            target = str(call.args[1])
            assert target == "root" or target.startswith("root/"), call
            assert not int(call.args[3]) & (1 << 20), f"MS_SHARED: {call}"  # type: ignore[call-overload]
    before = [c for c in kernel.calls[: first(kernel, "fork")] if c.name == "mount"]
    assert [c.args[1] for c in before] == ["/", str(pid1_dir)]


def test_the_old_root_is_detached_right_after_pivot_root(
    kernel: FakeKernel, layer: Path, pipes: Pipes, pid1_dir: Path
) -> None:
    start(kernel, container(layer), pipes, pid1_dir)
    at = first(kernel, "pivot_root")
    assert kernel.calls[at - 1 : at + 3] == [
        Call("chdir", ("root",)),
        Call("pivot_root", (".", ".")),
        Call("umount", (".", MNT_DETACH)),
        Call("chdir", ("/",)),
    ]
    # Every mount of the container is made before: nothing is mounted from the host after.
    assert all(c.name != "mount" for c in kernel.calls[at:])


def test_a_read_only_root_is_remounted_after_pivot_root(
    kernel: FakeKernel, layer: Path, pipes: Pipes, pid1_dir: Path
) -> None:
    start(kernel, container(layer, readonly_root=True), pipes, pid1_dir)
    at = first(kernel, "pivot_root")
    assert kernel.calls[at + 3] == Call(
        "mount", (None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY, None)
    )


def test_the_hostname_is_set_in_the_new_uts_namespace(
    kernel: FakeKernel, layer: Path, pipes: Pipes, pid1_dir: Path
) -> None:
    start(kernel, container(layer, hostname="db-1"), pipes, pid1_dir)
    unshare = kernel.calls[first(kernel, "unshare")]
    assert unshare.args == (ALL_NAMESPACES,)
    assert [c.args for c in kernel.calls if c.name == "sethostname"] == [("db-1",)]
    assert first(kernel, "unshare") < first(kernel, "sethostname") < first(kernel, "pivot_root")


def test_a_shared_user_namespace_is_joined_before_the_others_are_made(
    kernel: FakeKernel, layer: Path, pipes: Pipes, pid1_dir: Path
) -> None:
    start(kernel, container(layer, userns="/proc/self/ns/user"), pipes, pid1_dir)
    names = kernel.names()
    setns = kernel.calls[names.index("setns")]
    assert setns.args[1] == CLONE_NEWUSER
    assert names.index("setns") < names.index("unshare")
    assert kernel.calls[names.index("unshare")].args == (ALL_NAMESPACES & ~CLONE_NEWUSER,)


def test_host_network_keeps_the_callers_network_namespace(
    kernel: FakeKernel, layer: Path, pipes: Pipes, pid1_dir: Path
) -> None:
    start(kernel, container(layer, host_network=True), pipes, pid1_dir)
    assert kernel.calls[first(kernel, "unshare")].args == (ALL_NAMESPACES & ~CLONE_NEWNET,)
    assert "link_up" not in kernel.names()


def test_no_go_from_the_caller_ends_the_start_before_any_mount(
    kernel: FakeKernel, layer: Path, pipes: Pipes, pid1_dir: Path
) -> None:
    gone = start(kernel, container(layer), pipes, pid1_dir, go=b"")
    assert (gone.how, gone.value) == ("exit", 1)
    assert kernel.names()[-2:] == ["read", "exit_process"]
    assert "mount" not in kernel.names()


@pytest.mark.parametrize(
    ("fstype", "message"),
    [
        ("proc", "root file system: mount proc on root/proc: Operation not permitted"),
        ("overlay", "root file system: mount overlay on root: Operation not permitted"),
        (
            "tmpfs",
            "private tmpfs over the state dir: mount tmpfs on STATE: Operation not permitted",
        ),
    ],
)
def test_a_failing_mount_is_reported_with_its_path_and_nothing_runs_after_it(
    kernel: FakeKernel, layer: Path, pipes: Pipes, pid1_dir: Path, fstype: str, message: str
) -> None:
    kernel.fail_on("mount", lambda args: args[2] == fstype)
    gone = start(kernel, container(layer), pipes, pid1_dir)
    assert (gone.how, gone.value) == ("exit", 1)
    report = os.read(pipes.err_r, 8192).decode()
    assert report == "1\n" + message.replace("STATE", str(pid1_dir))
    failed = next(
        i for i, c in enumerate(kernel.calls) if c.name == "mount" and c.args[2] == fstype
    )
    assert kernel.names()[failed + 1 :] == ["write", "exit_process"]


class RecordingMaps(idmap.IdMaps):
    """Id maps that record when they are written, and whether "go" was sent by then."""

    def __init__(self, go_r: int, events: list[tuple[str, int, bool]]) -> None:
        super().__init__(
            (idmap.Extent(0, 100000, 65536),), (idmap.Extent(0, 100000, 65536),), False
        )
        self.go_r, self.events = go_r, events

    def write(self, pid: int) -> None:
        self.events.append(("maps", pid, _empty(self.go_r)))


def _empty(fd: int) -> bool:
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    try:
        os.read(fd, 1)
    except BlockingIOError:
        return True
    finally:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)
    return False


@pytest.mark.parametrize("joined", [False, True], ids=["own-userns", "joined-userns"])
def test_the_caller_writes_the_maps_and_connects_networks_before_saying_go(
    layer: Path, pipes: Pipes, joined: bool
) -> None:
    events: list[tuple[str, int, bool]] = []
    maps = RecordingMaps(pipes.go_r, events)
    config = container(
        layer,
        userns="/proc/self/ns/user" if joined else None,
        on_namespaces=lambda pid: events.append(("networks", pid, _empty(pipes.go_r))),
    )
    os.write(pipes.sync_w, b"u")  # the intermediate unshared
    os.write(pipes.sync_w, b"4242")  # ... and later forked pid 1
    init_pid = spawn._handshake(4000, config, maps, pipes.sync_r, pipes.go_w, pipes.err_r)
    assert init_pid == 4242
    # A joined user namespace has its maps already (userns_cache): none are written.
    expected = (
        [("networks", 4000, True)] if joined else [("maps", 4000, True), ("networks", 4000, True)]
    )
    assert events == expected
    assert os.read(pipes.go_r, 1) == b"g"


def test_a_caller_that_cannot_write_the_maps_never_says_go(layer: Path, pipes: Pipes) -> None:
    class FailingMaps(RecordingMaps):
        def write(self, pid: int) -> None:
            raise OSError(errno.EPERM, "newuidmap: write to uid_map failed")

    os.write(pipes.sync_w, b"u")
    with pytest.raises(OSError):
        spawn._handshake(
            4000, container(layer), FailingMaps(pipes.go_r, []), pipes.sync_r, pipes.go_w,
            pipes.err_r,
        )  # fmt: skip
    assert _empty(pipes.go_r)


def test_a_terminal_is_bound_on_dev_console(
    kernel: FakeKernel, layer: Path, pipes: Pipes, pid1_dir: Path
) -> None:
    # OCI runtime spec, config-linux.md "Default Devices": "/dev/console is set up if
    # terminal is enabled in the config by bind mounting the pseudoterminal pty to
    # /dev/console" (runc: mountConsole, after pivot_root).
    ours, theirs = socket.socketpair()
    try:
        start(kernel, container(layer, tty=True), pipes, pid1_dir, console=theirs)
        _, fds, _, _ = socket.recv_fds(ours, 1, 1)
    finally:
        ours.close()
    for fd in fds:
        os.close(fd)  # the master, as the caller would get it
    slave = int(kernel.calls[first(kernel, "take_terminal")].args[0])  # type: ignore[call-overload]
    os.close(slave)
    assert os.path.isfile(os.path.join(str(pid1_dir), "root", "dev", "console"))
    at = first(kernel, "pivot_root")
    assert kernel.calls[at + 2 : at + 6] == [
        Call("chdir", ("/",)),
        Call("mount", (f"/proc/self/fd/{slave}", "/dev/console", None, MS_BIND, None)),
        Call("setsid", ()),
        Call("take_terminal", (slave,)),
    ]


def test_no_terminal_no_dev_console(
    kernel: FakeKernel, layer: Path, pipes: Pipes, pid1_dir: Path
) -> None:
    start(kernel, container(layer), pipes, pid1_dir)
    assert not os.path.lexists(os.path.join(str(pid1_dir), "root", "dev", "console"))
    assert all(c.args[1] != "/dev/console" for c in kernel.calls if c.name == "mount")


def test_pid_1_of_an_intermediate_killed_before_reporting_it_exits(
    kernel: FakeKernel, layer: Path, pipes: Pipes, pid1_dir: Path
) -> None:
    """A detached start's intermediate exits once pid 1 is forked and its pid reported;
    killed in between (a `kill -9` of what bears the monitor's name, as the kill -9 loop
    of test_process_model does), it must not leave a container nobody knows of. pid 1
    waits for the intermediate's word first; here (the fake fork runs the child's side
    only) the word never comes, and pid 1 exits before anything of the container."""
    os.write(pipes.go_w, b"g")
    with pytest.raises(ProcessGone) as ended:
        spawn._monitor(
            container(layer), str(pid1_dir), pipes.sync_w, pipes.go_r, pipes.err_w,
            os.getppid(), None, detach=True, kernel=kernel,
        )  # fmt: skip
    assert (ended.value.how, ended.value.value) == ("exit", 1)
    names = [call.name for call in kernel.calls]
    after_fork = names[names.index("fork") + 1 :]
    assert after_fork == ["read", "exit_process"], after_fork
