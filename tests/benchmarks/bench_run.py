"""``envkit run --rm IMAGE true`` of a store image beside ``podman run --rm``.

Both run the same busybox OCI archive, loaded into a private store each (envkit: a temp
``ENVKIT_HOME``; podman: a private ``--root``/``--runroot``). The layer snapshot is made
by a warm-up run, so the figures are steady state: resolve the image, read its config,
fresh upper dir, start, wait, clean up. podman uses runc (crun refuses this host's
hybrid cgroups).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from tests.benchmarks.common import (
    Result,
    envkit_command,
    envkit_home,
    have,
    median_time,
    private_podman,
    sh,
)

RUNS = 10
REF = "busybox:1"


def podman_timing(
    base: Path, archive: Path, timed: Callable[[list[str], str], float]
) -> tuple[float | None, str]:
    """``timed(podman_command, image)`` with ``archive`` loaded into a private podman store
    under ``base``; ``(None, why)`` when podman cannot run here."""
    if not (have("podman") and have("runc")):
        return None, "podman or runc not installed"
    cmd = private_podman(base)
    try:
        loaded = subprocess.run(
            [*cmd, "load", "-q", "-i", str(archive)], check=True, capture_output=True, text=True
        )
        return timed(cmd, loaded.stdout.strip().rsplit(" ", 1)[-1]), ""
    except subprocess.CalledProcessError as exc:
        err = exc.stderr if isinstance(exc.stderr, str) else exc.stderr.decode(errors="replace")
        return None, f"podman failed: {err.strip()[-160:]}"


def _podman(base: Path, archive: Path) -> tuple[float | None, str]:
    def timed(cmd: list[str], image: str) -> float:
        run = [*cmd, "run", "--rm", "--network=none", *_host_ulimits(), image, "true"]
        sh(run)
        return median_time(lambda: sh(run), RUNS)

    return podman_timing(base, archive, timed)


def _host_ulimits() -> list[str]:
    """podman raises NOFILE above this host's hard limit unless told not to; runc fails to
    set NPROC at the host's own hard limit, but any lower value works."""
    import resource

    args = []
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY:
        args += ["--ulimit", f"nofile={soft}:{hard}"]
    soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
    if hard != resource.RLIM_INFINITY:
        low = min(1024, hard - 1)
        args += ["--ulimit", f"nproc={low}:{low}"]
    return args


def _unmount_below(base: Path) -> None:
    """Lazily unmount what podman's storage driver left mounted under ``base`` (as root)."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(f"{base}/")), reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def main() -> list[Result]:
    import envkit
    from tests.images import build_archive

    # Cleanup errors ignored: podman's storage may still be busy for a moment.
    with tempfile.TemporaryDirectory(prefix="envkit-bench-run-", ignore_cleanup_errors=True) as tmp:
        base = Path(tmp)
        base.chmod(0o755)
        archive = base / "busybox.tar"
        build_archive(archive, ref=REF)
        with envkit_home(base / "home"):
            cli = [*envkit_command(), "run", "--rm", REF, "true"]
            sh([sys.executable, "-m", "envkit", "load", "-q", "-i", str(archive)])
            sh(cli)  # warm-up: extracts the layer snapshot once
            cli_s = median_time(lambda: sh(cli), RUNS)
            stdio = (0, 1, 2)
            api_s = median_time(
                lambda: envkit.run(REF, ["true"], stdio=stdio, remove=True).wait(), RUNS
            )
        runc_s, crun_s, crun_note = _oci_runtimes(base)
        podman_s, note = _podman(base, archive)
        _unmount_below(base)
        if os.geteuid() != 0 and have("podman"):
            # Rootless podman's store holds files of subordinate ids: remove them inside
            # its user namespace, or the temp dir cannot be cleaned.
            store = [str(base / "podman"), str(base / "podman-run")]
            subprocess.run(["podman", "unshare", "rm", "-rf", *store], check=False)
    runc_note = f"runc run {runc_s * 1000:.1f} ms; " if runc_s is not None else ""
    return [
        Result(
            "run: envkit run --rm IMAGE true (CLI)",
            cli_s,
            "podman run --rm",
            podman_s,
            note or "same OCI archive; warm layer snapshot; podman with runc; target <= 0.3x",
        ),
        Result(
            "run: envkit.run(IMAGE, ['true'], remove=True).wait() (API)",
            api_s,
            "crun run",
            crun_s,
            crun_note
            if crun_s is None
            else f"target <= 2x crun; crun with envkit's isolation (network and cgroup ns, "
            f"docker's capabilities, Docker's seccomp profile); {crun_note}; {runc_note}"
            "crun in a private mount ns with cgroup2 (it refuses this host's hybrid cgroups)",
        ),
    ]


def _oci_runtimes(base: Path) -> tuple[float | None, float | None, str]:
    """``runc run`` and ``crun run`` of the same busybox rootfs (read-only) with the
    isolation of an envkit container, as bench_runtime does: (runc, crun, a note with
    crun's figure for runc's bare rootless spec, or why crun has no figure)."""
    from envkit.host import idmap
    from tests.benchmarks.bench_runtime import _rootfs, _runc_bundle
    from tests.benchmarks.crun_peer import crun_median

    if not have("runc"):
        return None, None, "runc (for the OCI bundle) not installed"
    maps = idmap.plan()
    uid, gid = maps.to_host_uid(0), maps.to_host_gid(0)
    runc_base = base / "runc"
    runc_base.mkdir()
    rootfs = _rootfs(runc_base, uid, gid)
    bundle = _runc_bundle(runc_base, rootfs, uid, gid)
    names = iter(range(1_000_000))
    state = str(runc_base / "state")
    runc_s = median_time(
        lambda: sh(["runc", "--root", state, "run", "--bundle", str(bundle), f"b{next(names)}"]),
        RUNS,
    )
    crun_s, crun_note = crun_median(bundle, RUNS)
    if crun_s is not None:
        bare_s, _ = crun_median(_runc_bundle(runc_base, rootfs, uid, gid, bare=True), RUNS)
        if bare_s is not None:
            crun_note = f"crun with runc's bare rootless spec {bare_s * 1000:.1f} ms"
    return runc_s, crun_s, crun_note


if __name__ == "__main__":
    from tests.benchmarks.common import podman_pause_cleanup, table

    with podman_pause_cleanup():
        print(table(main()))
