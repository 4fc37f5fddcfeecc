"""Execute one ``run`` step: a real envkit container on an overlay of the parent's layers.

The container gets a fresh upper dir under ``$ENVKIT_HOME/build/<pid>-<start>-<random>/``
(named after the building process: :mod:`envkit.build.sweep`); its command runs with
the image's Env (plus the step's), WorkingDir and User, stdin from /dev/null and
stdout+stderr into a pipe read line by line (secret values masked). Secrets and cache
mounts are bind mounts (:mod:`envkit.build.secrets_mount`, :mod:`envkit.build.cache`).
When the command succeeds, the upper dir becomes the step's layer
(:mod:`envkit.build.upper_layer`); the state dir is removed whatever happens.

Network: as ``docker build``, a run step uses the host's network (the container stays in
the caller's network namespace) with the host's /etc/resolv.conf bind-mounted read-only,
so ``apt-get install`` or ``pip install`` reach their mirrors; ``network="none"`` gives it
a namespace of its own with loopback only.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path

from envkit.build import cache
from envkit.build.image_state import ImageState
from envkit.build.rootfs_view import RootView
from envkit.build.secrets_mount import StepSecrets
from envkit.build.upper_layer import write_upper_layer
from envkit.errors import BuildError, StartError
from envkit.host.as_root import FORK_LOCK
from envkit.oci.layer_writer import Compression, LayerInfo
from envkit.runtime import image_config
from envkit.runtime.config import BindMount, ContainerConfig, Mount
from envkit.spec import steps as st
from envkit.store.atomic import TempFile
from envkit.store.store import Store

#: Mount points the runtime creates in every root when the image lacks them.
RUNTIME_MOUNTS = ("/proc", "/dev", "/sys")
HOST_RESOLV_CONF = "/etc/resolv.conf"
TAIL_LINES = 20


def execute_run(
    step: st.Run,
    state: ImageState,
    store: Store,
    *,
    label: str,
    base_dir: Path | None,
    epoch: int,
    compression: Compression,
    on_output: Callable[[str], None],
    bind_context: Path | None = None,
    bind_inputs: str | None = None,
) -> LayerInfo:
    """Run ``step`` on ``state``; its layer, written to the store. Raises
    :class:`BuildError` naming the step, its exit code and last output lines."""
    if not state.layers:
        raise BuildError(
            f"{label}: the image has no file system to run a command in",
            hint="start from a base image with a shell, or copy files in before running",
        )
    # lazy: only when a run step executes (downward)
    from envkit.runtime.spawn import start
    from envkit.runtime.state import remove_dir
    from envkit.settings import private_dir

    view = RootView.of(store, state)
    settings = state.settings
    who = image_config.resolve_user(
        str(settings.get("User") or ""), view.read_text("/etc/passwd"), view.read_text("/etc/group")
    )
    env = image_config.environment(settings, dict(step.env), home=who.home)
    cwd = image_config.workdir(settings)
    # lazy: a fully cached build does not load it
    from envkit.build.sweep import build_dir_name

    # Named after this process (pid and start time): what a killed build leaves is
    # told from a running one's dir, and removed by the next build, prune or fsck --repair.
    state_dir = Path(private_dir("build")) / build_dir_name()
    (state_dir / "upper").mkdir(parents=True)
    (state_dir / "work").mkdir()
    try:
        with StepSecrets(step.secrets, base_dir) as secret_mounts:
            mounts: list[Mount] = list(secret_mounts.mounts)
            for target, cache_id in step.caches:
                mounts.append(BindMount(str(cache.mount_dir(cache_id)), target))
            if step.binds:
                from envkit.build.context_binds import context_binds  # lazy: binds only

                context = bind_context or base_dir or Path.cwd()
                mounts += context_binds(step.binds, context, bind_inputs, state_dir / "binds", cwd)
            host_network = step.network != "none"
            if host_network and os.path.isfile(HOST_RESOLV_CONF):
                mounts.append(BindMount(HOST_RESOLV_CONF, "/etc/resolv.conf", readonly=True))
            stubs = _stubs(view, [m.target for m in mounts])
            config = ContainerConfig(
                layers=view.layers,
                argv=step.argv,
                upper_dir=str(state_dir / "upper"),
                work_dir=str(state_dir / "work"),
                env=env,
                cwd=cwd,
                uid=who.uid,
                gid=who.gid,
                groups=who.groups,
                hostname="envkit-build",
                mounts=mounts,
                host_network=host_network,
            )
            tail: deque[str] = deque(maxlen=TAIL_LINES)

            def line(text: str) -> None:
                tail.append(text)
                on_output(text)

            read_r, read_w = os.pipe()
            devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            try:
                with FORK_LOCK:
                    # Its runtime dir in the step's dir, as `envkit run` keeps it in the
                    # container's (spawn's default would import tempfile, ~1 ms).
                    container = start(
                        config.replace(stdio=(devnull, read_w, read_w)),
                        runtime_dir=str(state_dir / "rt"),
                    )
            except StartError as exc:
                os.close(read_r)
                raise BuildError(f"{label}: {exc.message}", hint=exc.hint) from None
            finally:
                os.close(read_w)
                os.close(devnull)
            reader = threading.Thread(
                target=_pump, args=(read_r, secret_mounts.mask, line), daemon=True
            )
            reader.start()
            try:
                code = container.wait()
            except BaseException:  # Ctrl-C: stop the step before its dirs are removed
                container.kill(signal.SIGKILL)
                container.wait()
                raise
            finally:
                reader.join()
                os.close(read_r)
        if code != 0:
            shown = "\n".join(f"  {t}" for t in tail)
            raise BuildError(
                f"{label} failed with exit code {code}"
                + (f"; last output:\n{shown}" if shown else ""),
                hint="fix the command (its output is above); nothing was tagged or cached",
            )
        return _store_layer(store, state_dir / "upper", stubs, epoch, compression)
    finally:
        remove_dir(state_dir)


def _stubs(view: RootView, targets: list[str]) -> list[str]:
    """Mount points (and their parents) the image does not have: to remove afterwards."""
    missing: set[str] = set()
    for target in [*RUNTIME_MOUNTS, *targets]:
        path = "/" + target.strip("/")
        while path != "/":
            if view.lookup(path) is not None:
                break
            missing.add(path)
            path = os.path.dirname(path)
    return sorted(missing)


def _pump(fd: int, mask: Callable[[bytes], bytes], line: Callable[[str], None]) -> None:
    pending = b""
    while chunk := os.read(fd, 65536):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            line(mask(raw).decode(errors="replace").rstrip("\r"))
    if pending:
        line(mask(pending).decode(errors="replace"))


def _store_layer(
    store: Store, upper: Path, stubs: list[str], epoch: int, compression: Compression
) -> LayerInfo:
    with store.shared(), TempFile(store.tmp_dir, "layer") as tmp:
        info = write_upper_layer(upper, tmp.file, stubs=stubs, epoch=epoch, compression=compression)
        # A layer the store has (a rebuild's, --no-cache's) is dropped without an fsync:
        # the build holds the store lock shared, so no prune removes the stored one.
        if not store.has_blob(info.digest):
            tmp.commit(store.blob_path(info.digest), replace=False)
    return info
