"""The runtime engine: real containers from a busybox rootfs, as root and rootless."""

from __future__ import annotations

import os
import signal
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from envkit.errors import SpecError, StartError
from envkit.host import idmap
from envkit.runtime import caps, rootfs, seccomp
from envkit.runtime.config import BindMount, ContainerConfig, TmpfsMount
from envkit.runtime.spawn import run, start
from tests.integration.conftest import Scratch

pytestmark = pytest.mark.rootless


def config(s: Scratch, argv: list[str], **kw: Any) -> ContainerConfig:
    kw.setdefault("upper_dir", str(s.upper))
    kw.setdefault("work_dir", str(s.work))
    return ContainerConfig(layers=[str(s.lower)], argv=argv, **kw)


def sh(s: Scratch, script: str, tmp_path: Path, **kw: Any) -> tuple[int, str]:
    """Run ``sh -c script`` in a container; its exit code and stdout+stderr."""
    out = tmp_path / "out.txt"
    with open(os.devnull, "rb") as stdin, open(out, "wb") as f:
        code = run(
            config(s, ["sh", "-c", script], stdio=(stdin.fileno(), f.fileno(), f.fileno()), **kw)
        )
    return code, out.read_text()


def mount_count() -> int:
    return len(Path("/proc/self/mountinfo").read_text().splitlines())


def descendants() -> set[int]:
    """Pids of every live process below this one (zombies included)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def state_dirs() -> set[str]:
    return {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("envkit-ctr-")}


def test_identity_pid1_and_hostname(scratch: Scratch, tmp_path: Path) -> None:
    code, out = sh(
        scratch,
        "id -u; id -g; echo $$; cat /proc/1/comm; hostname; readlink /proc/1/exe",
        tmp_path,
        hostname="box-7",
    )
    lines = out.splitlines()
    assert code == 0, out
    assert lines[:3] == ["0", "0", "1"]  # root inside; the command is pid 1, as in docker
    assert lines[3] == "sh"  # no envkit process in the container's pid namespace
    assert lines[4] == "box-7"
    assert lines[5] == "/bin/busybox"  # the image's file, not a host executable
    assert socket.gethostname() != "box-7"


def test_pid1_cmdline_is_the_users_command(scratch: Scratch, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with open(out, "wb") as f:
        argv = ["cat", "/proc/1/cmdline", "/proc/1/environ"]
        code = run(config(scratch, argv, env={"A": "1"}, stdio=(0, f.fileno(), f.fileno())))
    assert code == 0
    assert out.read_bytes() == b"cat\0/proc/1/cmdline\0/proc/1/environ\0A=1\0"


def test_host_files_and_processes_are_invisible(scratch: Scratch, tmp_path: Path) -> None:
    code, out = sh(scratch, "ls /; echo --; ps -o pid | tail -n +2", tmp_path)
    assert code == 0, out
    listing, pids = out.split("--\n")
    assert set(listing.split()) == {"bin", "dev", "etc", "home", "proc", "root", "sys", "tmp"}
    numbers = sorted(int(p) for p in pids.split())
    assert numbers[0] == 1  # sh; then only the pipeline's own processes
    assert len(numbers) <= 4 and max(numbers) < 10


def test_writes_land_in_the_upper_dir_only(scratch: Scratch, tmp_path: Path) -> None:
    code, out = sh(scratch, "echo hi > /etc/new && rm /etc/group && cat /etc/new", tmp_path)
    assert (code, out) == (0, "hi\n")
    assert (scratch.upper / "etc" / "new").read_text() == "hi\n"
    assert not (scratch.lower / "etc" / "new").exists()
    assert (scratch.lower / "etc" / "group").exists()


def test_read_only_root_without_upper_dir(scratch: Scratch, tmp_path: Path) -> None:
    code, out = sh(scratch, "touch /x", tmp_path, upper_dir=None, work_dir=None)
    assert (code, out) == (1, "touch: /x: Read-only file system\n")


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("exit 7", 7),
        ("true", 0),
        # A child's signal death, as the shell reports it.
        ("sh -c 'kill -TERM $$'; exit $?", 128 + 15),
        # pid 1 gets no signal it has no handler for from its own namespace (the
        # kernel's rule for a namespace's init, as in docker): SIGKILL included.
        ("kill -KILL $$; echo survived", 0),
    ],
)
def test_exit_codes_propagate(scratch: Scratch, tmp_path: Path, script: str, expected: int) -> None:
    assert sh(scratch, script, tmp_path)[0] == expected


def test_signals_reach_a_command_that_handles_them(scratch: Scratch) -> None:
    script = "trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done"
    read_fd, write_fd = os.pipe()
    with start(config(scratch, ["sh", "-c", script], stdio=(0, write_fd, 2))) as container:
        os.close(write_fd)
        assert os.read(read_fd, 6) == b"ready\n"
        container.kill(signal.SIGTERM)
        assert container.wait() == 42
    os.close(read_fd)


def test_pid1_without_a_handler_ignores_sigterm_as_in_docker(scratch: Scratch) -> None:
    with start(config(scratch, ["sleep", "60"])) as container:
        container.kill(signal.SIGTERM)
        time.sleep(0.2)
        assert container.returncode is None
        assert os.path.exists(f"/proc/{container.pid}")  # still running
        container.kill(signal.SIGKILL)  # what `stop` sends after its grace period
        assert container.wait() == 128 + signal.SIGKILL


def test_kill_9_ends_the_whole_container(scratch: Scratch) -> None:
    with start(config(scratch, ["sh", "-c", "sleep 60 & sleep 60"])) as container:
        container.kill(signal.SIGKILL)
        assert container.wait() == 128 + signal.SIGKILL


@pytest.mark.parametrize(
    ("script", "refusal"),
    [
        # Each fails for the reason named, with busybox's exit code 1 (as in docker): a
        # missing applet (127) or any other failure does not count.
        ("mount -t tmpfs none /tmp", "mount: permission denied (are you root?)"),
        ("unshare -U -r id -u", "unshare: unshare(0x10000000): Operation not permitted"),
        (
            "echo 1 > /proc/sys/kernel/ns_last_pid",
            "sh: can't create /proc/sys/kernel/ns_last_pid: Read-only file system",
        ),
        # Read-only in the container (runc's list); absent where the kernel has no SysRq.
        ("echo h > /proc/sysrq-trigger", "sh: can't create /proc/sysrq-trigger: "),
        ("echo 1 > /sys/kernel/profiling", "sh: can't create /sys/kernel/profiling: Read-only"),
        # A raw ICMP socket needs CAP_NET_RAW, which envkit drops (as podman 4 does).
        ("ping -c 1 -W 1 127.0.0.1", "ping: permission denied (are you root?)"),
    ],
)
def test_hostile_commands_fail(scratch: Scratch, tmp_path: Path, script: str, refusal: str) -> None:
    code, out = sh(scratch, script, tmp_path)
    assert (code, refusal in out) == (1, True), f"{script!r} gave {code}: {out}"


def test_privileges_are_docker_defaults(scratch: Scratch, tmp_path: Path) -> None:
    code, out = sh(
        scratch, "grep -E '^(CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status", tmp_path
    )
    assert code == 0, out
    fields = dict(line.split(":\t") for line in out.splitlines())
    assert caps.parse_mask(fields["CapEff"]) == caps.DEFAULT
    assert caps.parse_mask(fields["CapBnd"]) == caps.DEFAULT
    assert caps.parse_mask(fields["CapAmb"]) == frozenset()
    assert caps.CAP["NET_RAW"] not in caps.DEFAULT
    assert fields["NoNewPrivs"] == "1"
    assert fields["Seccomp"] == ("2" if seccomp.supported() else "0")


STANDARD_SIGNALS = (1 << 31) - 1  # bit N-1 is signal N


def test_the_command_starts_with_default_signal_dispositions(
    scratch: Scratch, tmp_path: Path
) -> None:
    # Python ignores SIGPIPE and SIGXFSZ; a caller may ignore more (here SIGHUP, as a
    # daemon does). exec keeps ignored signals ignored, so the runtime must reset them.
    # (Not through `sh -c`: busybox sh ignores SIGQUIT in the command it execs.)
    out = tmp_path / "status.txt"
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with open(out, "wb") as f:
            argv = ["/bin/busybox", "grep", "-E", "^(SigIgn|SigBlk):", "/proc/self/status"]
            code = run(config(scratch, argv, stdio=(0, f.fileno(), f.fileno())))
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert code == 0, out.read_text()
    fields = dict(line.split(":\t") for line in out.read_text().splitlines())
    assert int(fields["SigBlk"], 16) == 0
    # Signals 1-31: none ignored. (glibc's posix_spawn leaves its two internal signals,
    # 32 and 33, ignored in every process it starts; glibc and musl install their own
    # handlers for them when they need them.)
    assert int(fields["SigIgn"], 16) & STANDARD_SIGNALS == 0


def test_masked_paths_and_devices(scratch: Scratch, tmp_path: Path) -> None:
    code, out = sh(
        scratch,
        "wc -c < /proc/keys; ls /sys/firmware | wc -l; echo x > /dev/null && ls /dev/pts",
        tmp_path,
    )
    assert code == 0, out
    assert out.split()[:2] == ["0", "0"]
    assert "ptmx" in out.split()


def test_switch_to_another_user(scratch: Scratch, tmp_path: Path) -> None:
    if idmap.plan().single_id:
        pytest.skip("single-id map: container uid 1000 does not exist without subordinate ids")
    code, out = sh(
        scratch,
        "id -u; id -g; id -G; grep CapEff /proc/self/status",
        tmp_path,
        uid=1000,
        gid=1000,
        groups=[1000, 5],
    )
    assert code == 0, out
    lines = out.splitlines()
    assert lines[:3] == ["1000", "1000", "1000 5"]
    assert caps.parse_mask(lines[3].split()[1]) == frozenset()


def test_bind_and_tmpfs_mounts(scratch: Scratch, tmp_path: Path) -> None:
    data, ro = tmp_path / "data", tmp_path / "ro"
    data.mkdir()
    ro.mkdir()
    (ro / "f").write_text("ro")
    if os.geteuid() == 0:
        target = idmap.plan().to_host_uid(0)
        os.chown(data, target, target)
    mounts = [
        BindMount(str(data), "/data"),
        BindMount.parse(f"{ro}:/ro:ro"),
        TmpfsMount("/scratch"),
    ]
    code, out = sh(
        scratch,
        "echo v > /data/v && cat /ro/f && touch /scratch/t && ! touch /ro/x 2>/dev/null",
        tmp_path,
        mounts=mounts,
    )
    assert (code, out) == (0, "ro")
    assert (data / "v").read_text() == "v\n"
    assert not (ro / "x").exists()
    assert not (scratch.upper / "scratch" / "t").exists()  # the tmpfs took that write


def test_mount_target_symlink_stays_inside_the_rootfs(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "data").symlink_to("/etc")
    (root / "up").symlink_to("../../../..")
    assert rootfs.secure_join(str(root), "/data/x") == str(root / "etc" / "x")
    assert rootfs.secure_join(str(root), "/up/etc") == str(root / "etc")


def test_exec_failure_is_reported(scratch: Scratch) -> None:
    with pytest.raises(StartError) as info:
        run(config(scratch, ["/no/such/command"]))
    assert info.value.exit_code == 127
    assert "/no/such/command" in str(info.value)


@pytest.mark.parametrize("shebang", [None, "#!/proc/self/exe\n", "#!/proc/1/exe -x\n"])
def test_the_runtimes_own_executable_cannot_be_run_inside(
    scratch: Scratch, tmp_path: Path, shebang: str | None
) -> None:
    # CVE-2019-5736's pattern: /proc/self/exe before the exec is the host's Python; run
    # as the container's command, the container could rewrite it through /proc/PID/exe.
    argv = ["/proc/self/exe"]
    if shebang is not None:
        script = scratch.upper / "evil"
        script.write_text(shebang + "print('host python')\n")
        script.chmod(0o755)
        argv = ["/evil"]
    with pytest.raises(StartError) as info:
        run(config(scratch, argv))
    assert info.value.exit_code == 126
    assert "own executable" in str(info.value)


def test_setup_failure_is_reported(scratch: Scratch, tmp_path: Path) -> None:
    with pytest.raises(StartError, match="does-not-exist"):
        run(ContainerConfig(layers=[str(tmp_path / "does-not-exist")], argv=["true"]))


def test_nothing_leaks(scratch: Scratch, tmp_path: Path) -> None:
    mounts, procs, dirs = mount_count(), descendants(), state_dirs()
    assert sh(scratch, "sleep 30 & sleep 30 & exit 3", tmp_path)[0] == 3
    with start(config(scratch, ["sleep", "60"])) as container:
        container.kill(signal.SIGKILL)
    with pytest.raises(StartError):
        run(config(scratch, ["/nothing"]))
    assert mount_count() == mounts
    assert descendants() == procs
    assert state_dirs() == dirs


def test_config_is_validated() -> None:
    with pytest.raises(SpecError, match="argv"):
        ContainerConfig(layers=["/x"], argv=[])
    with pytest.raises(SpecError, match="upper_dir/work_dir"):
        ContainerConfig(layers=["/x"], argv=["true"], upper_dir="/u")
    with pytest.raises(SpecError, match="mount"):
        BindMount.parse("/a:/b:rx")


def test_seccomp_program_is_well_formed() -> None:
    from tests.seccomp_bpf import parse

    assert {"x86_64", "aarch64"} <= set(seccomp.ARCHES)
    for machine in seccomp.ARCHES:
        prog = parse(Path(seccomp.bpf_path(machine, "default")).read_bytes())
        assert len(prog) < 4096  # BPF_MAXINSNS
        assert prog[-1][0] & 0x07 == 0x06  # it ends with a return
        for index, (code, jt, jf, k) in enumerate(prog):
            if code & 0x07 == 0x05:  # jumps stay inside the program
                assert index + 1 + (k if code & 0xF0 == 0 else max(jt, jf)) < len(prog)


def test_id_maps_never_map_host_root(tmp_path: Path) -> None:
    maps = idmap.plan()
    # As root the ranges come from /etc/subuid; rootless from the caller's own ids: neither
    # may be host root (0 outside), which the rootless run proves too.
    assert maps.uids and maps.gids
    assert [e for e in maps.uids + maps.gids if e.outside == 0] == [], maps
    sub = tmp_path / "subuid"
    sub.write_text("someone:100000:65536\n0:500000:65536\n")
    assert idmap.subordinate_range(str(sub), "root", 0) == (500000, 65536)
    assert idmap.subordinate_range(str(sub), "nobody", 65534) is None


@pytest.mark.parametrize("host_network", [False, True])
def test_host_network_shares_the_callers_namespace(
    scratch: Scratch, tmp_path: Path, host_network: bool
) -> None:
    code, out = sh(scratch, "readlink /proc/self/ns/net", tmp_path, host_network=host_network)
    assert code == 0, out
    assert (out.strip() == os.readlink("/proc/self/ns/net")) is host_network
