"""Probes of what the rootless runtime needs from the kernel and host (``envkit doctor``).

Each probe returns a :class:`Check` with what was found and, for a gap, the fix. Probes
that need new namespaces run in a forked child so the caller's process is never changed.
"""

from __future__ import annotations

import os
import platform
import pwd
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from envkit.errors import ChildError
from envkit.host import syscalls
from envkit.host.forking import call_in_child
from envkit.records import Value

#: Seconds a probe's child may take (a mount on a hung file system must not hang doctor).
PROBE_TIMEOUT = 30.0


class Check(Value):
    """One probe's result. ``required`` gaps stop containers; others limit features."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def _in_child(fn: Callable[[], None]) -> str:
    """Run ``fn`` in a forked child; "" on success or what went wrong there (with
    ``ENVKIT_DEBUG=1``, the child's traceback too)."""
    try:
        call_in_child(fn, what="the probe", timeout=PROBE_TIMEOUT)
    except ChildError as exc:
        return str(exc)
    return ""


def _enter_userns() -> None:
    """In a child: new user+mount namespaces, mapping our ids to root inside."""
    uid, gid = os.getuid(), os.getgid()
    syscalls.unshare(syscalls.CLONE_NEWUSER | syscalls.CLONE_NEWNS)
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
    Path("/proc/self/gid_map").write_text(f"0 {gid} 1")
    syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)


def kernel() -> Check:
    release = platform.release()
    try:
        major, minor = (int(x) for x in release.split(".")[:2])
    except ValueError:
        return Check("kernel", False, f"cannot parse kernel release {release!r}", "")
    ok = (major, minor) >= (5, 11)
    return Check(
        "kernel",
        ok,
        f"Linux {release}" + ("" if ok else " (overlayfs in a user namespace needs 5.11)"),
        "" if ok else "upgrade to Linux 5.11 or newer",
    )


def user_namespaces() -> Check:
    error = _in_child(lambda: syscalls.unshare(syscalls.CLONE_NEWUSER))
    if not error:
        return Check("user namespaces", True, "unprivileged user namespaces work")
    fix = "sysctl -w kernel.unprivileged_userns_clone=1"
    if Path("/proc/sys/user/max_user_namespaces").exists():
        fix += " (and user.max_user_namespaces > 0)"
    if Path("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").exists():
        fix += "; on Ubuntu: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"
    return Check("user namespaces", False, f"unshare(CLONE_NEWUSER) failed: {error}", fix)


def _overlay_and_pivot(scratch: str) -> None:
    _enter_userns()
    syscalls.mount("tmpfs", scratch, "tmpfs", 0, "mode=0755")
    for name in ("lower", "upper", "work", "merged"):
        os.mkdir(os.path.join(scratch, name))
    Path(scratch, "lower", "probe").write_text("ok")
    opts = f"lowerdir={scratch}/lower,upperdir={scratch}/upper,workdir={scratch}/work"
    try:
        syscalls.mount("overlay", f"{scratch}/merged", "overlay", 0, opts + ",userxattr")
    except OSError:
        syscalls.mount("overlay", f"{scratch}/merged", "overlay", 0, opts)
    merged = f"{scratch}/merged"
    syscalls.mount(merged, merged, None, syscalls.MS_BIND | syscalls.MS_REC)
    os.mkdir(f"{merged}/.old")
    os.chdir(merged)
    syscalls.pivot_root(".", ".old")
    syscalls.umount("/.old", syscalls.MNT_DETACH)
    if Path("/probe").read_text() != "ok":
        raise OSError("the overlay root did not show its lower layer")


def overlay_and_pivot_root() -> Check:
    with tempfile.TemporaryDirectory(prefix="envkit-doctor-") as scratch:
        error = _in_child(lambda: _overlay_and_pivot(scratch))
    if not error:
        return Check(
            "overlayfs + pivot_root", True, "overlay mounts and pivot_root work in a user namespace"
        )
    return Check(
        "overlayfs + pivot_root",
        False,
        f"failed inside a user namespace: {error}",
        "use Linux 5.11+ with overlayfs built in (modprobe overlay); some hardened kernels "
        "disable unprivileged overlay mounts",
    )


def _subid_count(path: str, user: str, uid: int) -> int:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return 0
    total = 0
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] in (user, str(uid)) and parts[2].isdigit():
            total += int(parts[2])
    return total


def _is_privileged_helper(path: str) -> bool:
    st = os.stat(path)
    if st.st_mode & stat.S_ISUID and st.st_uid == 0:
        return True
    try:
        return bool(os.getxattr(path, "security.capability"))
    except OSError:
        return False


def subordinate_ids() -> Check:
    uid = os.getuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    helpers = [shutil.which("newuidmap"), shutil.which("newgidmap")]
    sub_u = _subid_count("/etc/subuid", user, uid)
    sub_g = _subid_count("/etc/subgid", user, uid)
    fix_ranges = f"usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}"
    if None in helpers:
        return Check(
            "subordinate ids",
            False,
            "newuidmap/newgidmap not found: containers get a single-id map "
            "(only root inside; chown to other users and multi-user images fail)",
            "install the uidmap package (apt-get install uidmap)",
            required=False,
        )
    if not all(_is_privileged_helper(h) for h in helpers if h):
        return Check(
            "subordinate ids",
            False,
            "newuidmap/newgidmap are neither setuid root nor file-capable",
            "reinstall the uidmap package",
            required=False,
        )
    if sub_u < 65536 or sub_g < 65536:
        return Check(
            "subordinate ids",
            False,
            f"{user} has {sub_u} subuids and {sub_g} subgids (65536 wanted): "
            "containers get a single-id map",
            fix_ranges,
            required=False,
        )
    return Check("subordinate ids", True, f"{user}: {sub_u} subuids, {sub_g} subgids, newuidmap ok")


def _own_cgroup_v2() -> Path | None:
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    rel = next((line[3:] for line in lines if line.startswith("0::")), None)
    if rel is None:
        return None
    for base in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        candidate = Path(base) / rel.lstrip("/")
        if (Path(base) / "cgroup.controllers").exists() and candidate.is_dir():
            return candidate
    return None


def cgroup_delegation() -> Check:
    cg = _own_cgroup_v2()
    fix = (
        "run under a systemd user session with delegation "
        "(systemd-run --user -p Delegate=yes ...), or boot with a unified cgroup v2 hierarchy"
    )
    if cg is None:
        return Check(
            "cgroup v2 delegation",
            False,
            "no cgroup v2 hierarchy for this process: --memory, --cpus and --pids-limit "
            "will be refused",
            fix,
            required=False,
        )
    try:
        available = set((cg / "cgroup.controllers").read_text().split())
    except OSError:
        available = set()
    writable = os.access(cg, os.W_OK) and os.access(cg / "cgroup.subtree_control", os.W_OK)
    wanted = {"memory", "cpu", "pids"}
    if writable and wanted <= available:
        return Check("cgroup v2 delegation", True, f"{cg}: {', '.join(sorted(available))}")
    missing = ", ".join(sorted(wanted - available)) or "none"
    return Check(
        "cgroup v2 delegation",
        False,
        f"{cg}: writable={writable}, missing controllers: {missing}; "
        "--memory, --cpus and --pids-limit will be refused",
        fix,
        required=False,
    )


def dev_net_tun() -> Check:
    """Which egress envkit's networks use, and why (slirp4netns/pasta need the tun device)."""
    path = "/dev/net/tun"
    builtin = (
        "egress uses envkit's own forwarder (TCP proxied from the host's namespace, DNS "
        "relayed; no other UDP, no ICMP)"
    )
    if not os.path.exists(path):
        return Check(
            "/dev/net/tun",
            False,
            f"absent, so slirp4netns/pasta cannot run: {builtin}",
            "modprobe tun",
            required=False,
        )
    if not os.access(path, os.R_OK | os.W_OK):
        return Check(
            "/dev/net/tun",
            False,
            f"not openable by this user, so slirp4netns/pasta cannot run: {builtin}",
            "chmod 0666 /dev/net/tun (the usual mode) if your policy allows",
            required=False,
        )
    return Check(
        "/dev/net/tun",
        True,
        f"usable; {builtin}, as everywhere (a pasta backend is not implemented)",
    )


def iptables_legacy() -> Check:
    """The nat rules that steer containers' TCP to the egress forwarder need iptables-legacy."""
    missing = [t for t in ("iptables-legacy-restore", "iptables-legacy") if not shutil.which(t)]
    if missing:
        return Check(
            "iptables-legacy",
            False,
            f"{', '.join(missing)} not found: containers on networks reach each other and "
            "published ports work, but nothing goes out (no egress)",
            "apt-get install iptables",
            required=False,
        )
    return Check(
        "iptables-legacy", True, f"{shutil.which('iptables-legacy-restore')}: egress rules"
    )


PROBES: tuple[Callable[[], Check], ...] = (
    kernel,
    user_namespaces,
    overlay_and_pivot_root,
    subordinate_ids,
    cgroup_delegation,
    dev_net_tun,
    iptables_legacy,
)


def run_all() -> list[Check]:
    """Every probe, in order."""
    return [probe() for probe in PROBES]
