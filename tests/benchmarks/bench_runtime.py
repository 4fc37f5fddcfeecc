"""Start-to-exit of ``true`` in a busybox rootfs: envkit's runtime beside runc and podman.

The rootfs lives on /dev/shm (tmpfs) for every contestant. envkit runs it as an overlay
with a fresh upper dir per run (what ``run --rm`` will do); runc gets an OCI bundle of the
same directory (``runc spec --rootless`` with envkit's id maps, read-only root, and the
isolation an envkit container has: network and cgroup namespaces, docker's capabilities,
Docker's seccomp profile; crun is also timed with the bare spec, for scale); podman
runs it with ``--rootfs`` and runc as its OCI runtime (crun refuses this host's hybrid
cgroups).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.benchmarks.common import Result, have, median_time, sh

RUNS = 15
APPLETS = ("sh", "true")


def _rootfs(base: Path, uid: int, gid: int) -> Path:
    root = base / "rootfs"
    for name in ("bin", "etc", "proc", "dev", "sys", "tmp"):
        (root / name).mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    if os.geteuid() == 0:
        for path in (root, *root.rglob("*")):
            os.lchown(path, uid, gid)
    return root


def _runc_bundle(base: Path, rootfs: Path, uid: int, gid: int, *, bare: bool = False) -> Path:
    """An OCI bundle of ``rootfs``: ``runc spec --rootless`` with envkit's id maps and a
    read-only root, given the isolation an envkit container has unless ``bare``."""
    bundle = base / ("bundle-bare" if bare else "bundle")
    bundle.mkdir()
    subprocess.run(["runc", "spec", "--rootless"], cwd=bundle, check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["args"] = ["true"]
    spec["process"]["terminal"] = False
    spec["root"] = {"path": str(rootfs), "readonly": True}
    spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": uid, "size": 1}]
    spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": gid, "size": 1}]
    if not bare:
        _isolate_as_envkit(spec)
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle


def _isolate_as_envkit(spec: dict[str, Any]) -> None:
    """What an envkit container has and ``runc spec --rootless`` leaves out: network and
    cgroup namespaces, docker's default capabilities (runc's rootless spec keeps three)
    and Docker's default seccomp profile (runc's spec has none), so both do the same work."""
    from envkit.runtime import caps, seccomp

    spec["linux"]["namespaces"] += [{"type": "network"}, {"type": "cgroup"}]
    names = [f"CAP_{caps.NAMES[c]}" for c in sorted(caps.DEFAULT)]
    spec["process"]["capabilities"] = {"bounding": names, "effective": names, "permitted": names}
    # The same filter envkit loads: Docker's default profile for these capabilities,
    # as Docker hands it to runc (crun compiles it with libseccomp at each start, as
    # runc and crun do under docker and podman).
    spec["linux"]["seccomp"] = seccomp.oci_config(
        seccomp.load_profile(), os.uname().machine, seccomp.DEFAULT_CAPS
    )


def main() -> list[Result]:
    from envkit.host import idmap
    from envkit.runtime.config import ContainerConfig
    from envkit.runtime.spawn import run

    maps = idmap.plan()
    uid, gid = maps.to_host_uid(0), maps.to_host_gid(0)
    results = []
    with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="envkit-bench-") as tmp:
        base = Path(tmp)
        base.chmod(0o755)  # runc resolves the rootfs path as container root
        rootfs = _rootfs(base, uid, gid)
        counter = iter(range(1_000_000))
        config: list[ContainerConfig] = []

        def fresh_dirs() -> None:
            n = next(counter)
            upper, work = base / f"upper{n}", base / f"work{n}"
            upper.mkdir()
            work.mkdir()
            config[:] = [
                ContainerConfig(
                    layers=[str(rootfs)], upper_dir=str(upper), work_dir=str(work), argv=["true"]
                )
            ]

        def envkit_api() -> None:
            assert run(config[0]) == 0

        api = median_time(envkit_api, RUNS, setup=fresh_dirs)
        runc_s = None
        if have("runc"):
            bundle = _runc_bundle(base, rootfs, uid, gid)
            names = iter(range(1_000_000))
            runc_s = median_time(
                lambda: sh(
                    [
                        "runc",
                        "--root",
                        str(base / "runc-state"),
                        "run",
                        "--bundle",
                        str(bundle),
                        f"envkit-bench-{os.getpid()}-{next(names)}",
                    ]
                ),
                RUNS,
            )
        crun_s, crun_note = (None, "runc (for the OCI bundle) not installed")
        if runc_s is not None:
            from tests.benchmarks.crun_peer import crun_median

            crun_s, crun_note = crun_median(bundle, RUNS)
            if crun_s is not None:
                bare = _runc_bundle(base, rootfs, uid, gid, bare=True)
                bare_s, _ = crun_median(bare, RUNS)
                crun_note = (
                    "crun: the same bundle (envkit's isolation), in a mount ns with a cgroup2 "
                    "/sys/fs/cgroup"
                )
                if bare_s is not None:
                    crun_note += f"; with runc's bare rootless spec {bare_s * 1000:.1f} ms"
        results.append(
            Result(
                "runtime: run true (Python API, in-process)",
                api,
                "runc run",
                runc_s,
                "envkit: overlay + fresh upper per run; runc: read-only bind of the rootfs",
            )
        )
        results.append(
            Result(
                "runtime: run true (Python API, in-process)",
                api,
                "crun run",
                crun_s,
                crun_note,
            )
        )
        script = (
            "from envkit.runtime.config import ContainerConfig\n"
            "from envkit.runtime.spawn import run\n"
            "import sys\n"
            f"sys.exit(run(ContainerConfig(layers=[{str(rootfs)!r}], argv=['true'])))\n"
        )
        fresh = median_time(lambda: sh([sys.executable, "-c", script]), RUNS)
        podman_s, podman_note = None, ""
        from tests.benchmarks.bench_run import _host_ulimits

        podman = ["podman", "--runtime", "runc", "run", "--rm", "--network=none", *_host_ulimits()]
        podman += ["--rootfs", str(rootfs), "true"]
        if have("podman") and have("runc"):
            try:
                sh(podman)
                podman_s = median_time(lambda: sh(podman), RUNS)
            except subprocess.CalledProcessError as exc:
                # As root here podman's default rlimits exceed the hard limit (HOST-NOTES).
                podman_note = f"; podman failed: {exc.stderr.decode(errors='replace')[-160:]}"
        results.append(
            Result(
                "runtime: run true (fresh interpreter)",
                fresh,
                "podman run --rm",
                podman_s,
                f"envkit: {Path(sys.executable).name} -c import+run, read-only root{podman_note}",
            )
        )
    return results


if __name__ == "__main__":
    from tests.benchmarks.common import table

    print(table(main()))
