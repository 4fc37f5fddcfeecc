"""Unpack and configure a resolved package set into a root file system, then a layer.

As debootstrap and mmdebstrap do:

1. a merged-/usr skeleton, the ``Essential: yes`` packages (and the libraries they need)
   unpacked with :func:`envkit.builtin.debian.deb.extract_data`, and an empty dpkg
   database: enough for dpkg to run. This runs as root of a user namespace with the
   container id maps, so owners like ``root:shadow`` are kept.
2. in an envkit container whose overlay upper dir *is* that root (over an empty lower
   dir, so every change lands in it): ``dpkg --install`` of the essential .debs, which
   unpacks them again with their maintainer scripts and writes dpkg's database, then
   ``dpkg --install`` of the rest (dpkg unpacks them all, then configures them in
   dependency order), with a policy-rc.d that forbids service starts and
   ``force-unsafe-io``. The verified .debs are bind-mounted read-only from the cache.
3. the root written as one deterministic layer (:func:`write_upper_layer`, from inside
   the user namespace, so the layer holds container ids).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from envkit.builtin.debian.deb import extract_data
from envkit.builtin.debian.packages import Package
from envkit.builtin.debian.userns import call_as_container_root
from envkit.errors import BootstrapError, DebFormatError, StartError
from envkit.records import Value, replace

#: Where the container sees the cached .debs (removed from the image afterwards).
DEBS_MOUNT = "/var/cache/envkit-debs"
#: The base layer stays gzip (what every registry client reads, older docker included),
#: at level 1: on ~100 MB here 1.4 s instead of 4.0 s at the default 6, ~12% larger.
GZIP_LEVEL = 1
#: Merged /usr: these are symlinks into /usr on Debian 12 and later.
MERGED_USR = {"amd64": ("bin", "sbin", "lib", "lib64")}
ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "DEBIAN_FRONTEND": "noninteractive",
    "DEBCONF_NONINTERACTIVE_SEEN": "true",
    "LC_ALL": "C",
    "LANGUAGE": "C",
    "LANG": "C",
    "HOME": "/root",
}
_DPKG = "dpkg --force-depends --force-confold --force-confdef --install"
_CLEAN = (
    "/usr/sbin/policy-rc.d",
    "/etc/dpkg/dpkg.cfg.d/envkit-bootstrap",
    "/var/log/dpkg.log",
    "/var/log/alternatives.log",
    "/var/log/apt/*",
    "/var/cache/debconf/*-old",
    "/var/lib/dpkg/*-old",
    "/var/cache/ldconfig/aux-cache",
)
TAIL_LINES = 25
#: .debs unpacked at once in the first stage.
UNPACK_THREADS = 2
# Hardlinks become copies: envkit.store.snapshots shifts owners once per path, so as
# root a second link of one inode would be shifted twice (and refused).
_UNLINK = (
    "find / -xdev -type f -links +1 -exec sh -c "
    '\'for f; do cp -p "$f" "$f.envkit-tmp" && mv -f "$f.envkit-tmp" "$f"; done\' sh {} +'
)


class Plan(Value):
    """What to bootstrap: the packages (sorted), their cached .debs, and the mirror."""

    packages: Sequence[Package]
    debs: dict[str, Path]  # package name -> cached .deb
    mirror: str
    suite: str
    architecture: str = "amd64"


def essential_closure(packages: Sequence[Package]) -> list[Package]:
    """The ``Essential: yes`` packages and, transitively, what they need from the set."""
    by_name = {p.name: p for p in packages}
    providers: dict[str, str] = {}
    for p in packages:
        for prov in p.provides:
            providers.setdefault(prov.name, p.name)
    chosen: dict[str, Package] = {}
    queue = deque(p for p in packages if p.essential)
    while queue:
        pkg = queue.popleft()
        if pkg.name in chosen:
            continue
        chosen[pkg.name] = pkg
        for alts in pkg.requires:
            for rel in alts:
                name = rel.name if rel.name in by_name else providers.get(rel.name)
                if name is not None:
                    queue.append(by_name[name])
                    break
    return sorted(chosen.values(), key=lambda p: p.name)


def build_rootfs(plan: Plan, workdir: Path, on_output: Callable[[str], None] | None = None) -> Path:
    """Bootstrap ``plan`` into ``workdir/rootfs`` (returned); ``workdir`` must be empty
    and on one file system. Raises :class:`BootstrapError` when dpkg fails."""
    rootfs, lower, work = workdir / "rootfs", workdir / "lower", workdir / "work"
    for path in (rootfs, lower, work):
        path.mkdir(mode=0o755)
    if os.geteuid() == 0:  # container root is a subordinate id, which must own the root
        from envkit.host import idmap  # lazy: only as root (downward)

        maps = idmap.plan()
        os.chown(rootfs, maps.to_host_uid(0), maps.to_host_gid(0))
    essential = essential_closure(plan.packages)
    # Opened here and used as /proc/self/fd/N by the child: container root may lack the
    # permission to walk the host directories above them (a 0700 $ENVKIT_HOME parent).
    fds = [os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)]
    try:
        debs = {}
        for pkg in essential:
            fds.append(os.open(plan.debs[pkg.name], os.O_RDONLY | os.O_CLOEXEC))
            debs[pkg.name] = Path(f"/proc/self/fd/{fds[-1]}")
        inside = replace(plan, debs=debs)
        root = Path(f"/proc/self/fd/{fds[0]}")
        call_as_container_root(
            lambda: _first_stage(inside, root, essential), "unpacking the essential packages"
        )
    finally:
        for fd in fds:
            os.close(fd)
    _second_stage(plan, essential, rootfs, lower, work, on_output or (lambda _: None))
    return rootfs


def _first_stage(plan: Plan, rootfs: Path, essential: Sequence[Package]) -> None:
    os.chmod(rootfs, 0o755)
    usr = rootfs / "usr"
    usr.mkdir(mode=0o755)
    for name in MERGED_USR.get(plan.architecture, ("bin", "sbin", "lib")):
        (usr / name).mkdir(mode=0o755)
        (rootfs / name).symlink_to(f"usr/{name}")
    for name in ("dev", "proc", "sys", "etc/apt", "etc/dpkg/dpkg.cfg.d", "usr/sbin"):
        (rootfs / name).mkdir(mode=0o755, parents=True, exist_ok=True)
    _unpack_all([plan.debs[pkg.name] for pkg in essential], rootfs)
    dpkg = rootfs / "var/lib/dpkg"
    for name in ("info", "updates", "triggers", "alternatives"):
        (dpkg / name).mkdir(mode=0o755, parents=True, exist_ok=True)
    for name in ("status", "available"):
        (dpkg / name).write_text("")
    (dpkg / "arch").write_text(plan.architecture + "\n")
    (rootfs / "etc/dpkg/dpkg.cfg.d/envkit-bootstrap").write_text("force-unsafe-io\n")
    policy = rootfs / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\n# envkit bootstrap: no service starts\nexit 101\n")
    policy.chmod(0o755)
    (rootfs / "etc/apt/sources.list").write_text(sources_list(plan.mirror, plan.suite))
    (rootfs / DEBS_MOUNT.lstrip("/")).mkdir(mode=0o755, parents=True, exist_ok=True)


def _unpack_all(debs: Sequence[Path], rootfs: Path) -> None:
    """:func:`extract_data` of each .deb, :data:`UNPACK_THREADS` at a time (xz and the
    file system calls release the GIL), then again one by one in order for any that
    failed: essential packages share directories, never files, so a failure is either
    a race on a path two of them create (which the ordered retry settles) or real (and
    raised by it)."""
    from concurrent.futures import ThreadPoolExecutor  # lazy for start-up: only to unpack

    def unpack(deb: Path) -> Path | None:
        try:
            extract_data(deb, rootfs)
        except (OSError, DebFormatError):
            return deb
        return None

    with ThreadPoolExecutor(UNPACK_THREADS) as pool:
        failed = [deb for deb in pool.map(unpack, debs) if deb is not None]
    for deb in failed:
        extract_data(deb, rootfs)


def sources_list(mirror: str, suite: str) -> str:
    """The image's /etc/apt/sources.list: the mirror it was bootstrapped from."""
    return f"deb {mirror} {suite} main\n"


def second_stage_script(plan: Plan, essential: Sequence[Package]) -> str:
    """The shell script the build container runs (dpkg's part of the bootstrap)."""
    first = {p.name for p in essential}
    rest = [p for p in plan.packages if p.name not in first]

    def debs(pkgs: Sequence[Package]) -> str:
        return " ".join(plan.debs[p.name].name for p in pkgs)

    lines = ["set -e", f"cd {DEBS_MOUNT}", f"{_DPKG} {debs(essential)}"]
    if rest:
        lines.append(f"{_DPKG} {debs(rest)}")
    lines += ["dpkg --configure -a", "cd /", "rm -rf " + " ".join(_CLEAN), _UNLINK]
    return "\n".join(lines) + "\n"


def _second_stage(
    plan: Plan,
    essential: Sequence[Package],
    rootfs: Path,
    lower: Path,
    work: Path,
    on_output: Callable[[str], None],
) -> None:
    # lazy for start-up: the runtime loads only when a bootstrap runs (downward)
    from envkit.host.as_root import FORK_LOCK
    from envkit.runtime.config import BindMount, ContainerConfig
    from envkit.runtime.spawn import start

    deb_dirs = {p.parent for p in plan.debs.values()}
    if len(deb_dirs) != 1:
        raise BootstrapError("the .debs of one bootstrap must share one cache directory")
    read_r, read_w = os.pipe()
    devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    config = ContainerConfig(
        layers=[str(lower)],
        upper_dir=str(rootfs),
        work_dir=str(work),
        argv=["/bin/sh", "-c", second_stage_script(plan, essential)],
        env=ENV,
        hostname="envkit-bootstrap",
        mounts=[BindMount(str(deb_dirs.pop()), DEBS_MOUNT, readonly=True)],
        stdio=(devnull, read_w, read_w),
    )
    tail: deque[str] = deque(maxlen=TAIL_LINES)

    def pump() -> None:
        with os.fdopen(read_r, "rb") as lines:
            for raw in lines:
                text = raw.decode(errors="replace").rstrip("\n")
                tail.append(text)
                on_output(text)

    try:
        with FORK_LOCK:
            container = start(config)
    except StartError as exc:
        os.close(read_r)
        raise BootstrapError(
            f"cannot start the bootstrap container: {exc.message}", hint=exc.hint
        ) from None
    finally:
        os.close(read_w)
        os.close(devnull)
    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    code = container.wait()
    reader.join()
    if code != 0:
        shown = "\n".join(f"  {t}" for t in tail)
        raise BootstrapError(
            f"configuring the Debian packages failed (dpkg exit code {code}); last output:\n"
            + shown,
            hint="a maintainer script failed; the output above names the package. Try "
            "without the package, or another suite",
        )
