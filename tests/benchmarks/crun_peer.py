"""``crun run`` timings on this host, which crun refuses as it stands.

crun rejects the hybrid cgroup layout here ("cgroups in hybrid mode not supported")
even with ``--cgroup-manager=disabled``: it looks at /sys/fs/cgroup first. So the timing
loop runs in a private mount namespace whose /sys/fs/cgroup is a cgroup2 mount (as an
unprivileged user, also in a user namespace where the caller is root, so the mount is
allowed), and crun runs there without a cgroup manager. The loop runs inside, so the
namespace set-up is not timed: each figure is one ``crun run`` of the bundle.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.benchmarks.common import have

_LOOP = """
import json, statistics, subprocess, sys, time
argv, runs = json.loads(sys.argv[1]), int(sys.argv[2])
times = []
for n in range(runs + 1):
    start = time.perf_counter()
    subprocess.run([*argv, f"crun-bench-{n}"], check=True, stdout=subprocess.DEVNULL)
    times.append(time.perf_counter() - start)
print(statistics.median(times[1:]))
"""


def crun_median(bundle: Path, runs: int) -> tuple[float | None, str]:
    """Median seconds of ``crun run`` of ``bundle`` (a runc-style OCI bundle), or
    ``None`` and why. Rootless, the bundle's id maps are rewritten to map container root
    to the caller as the user namespace made here sees it (id 0)."""
    if not have("crun"):
        return None, "crun not installed"
    config_path = bundle / "config.json"
    config = json.loads(config_path.read_text())
    prefix = ["unshare", "-m", "--propagation", "private"]
    if os.geteuid() != 0:
        prefix[1:1] = ["-r", "-C"]
        config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 1}]
        config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 1}]
    crun_bundle = bundle.with_name(bundle.name + "-crun")
    crun_bundle.mkdir(exist_ok=True)
    (crun_bundle / "config.json").write_text(json.dumps(config))
    argv = ["crun", "--cgroup-manager=disabled", "--root", str(bundle.parent / "crun-state")]
    argv += ["run", "--bundle", str(crun_bundle)]
    script = 'mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec "$@"'
    done = subprocess.run(
        [
            *prefix,
            "sh",
            "-c",
            script,
            "sh",
            sys.executable,
            "-c",
            _LOOP,
            json.dumps(argv),
            str(runs),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return None, f"crun failed: {done.stderr.strip()[-160:]}"
    return float(done.stdout.strip()), ""
