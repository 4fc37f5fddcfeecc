"""Run an image from the store: ``envkit.run()`` and the foreground ``envkit run``.

An image's layers become shared read-only snapshots (:mod:`envkit.store.snapshots`);
each container gets a fresh upper and work dir under ``$ENVKIT_HOME/containers/<id>/``,
removed when it exits. Docker's image-config rules are in
:mod:`envkit.runtime.image_config`.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from envkit.errors import RuntimeError_, SpecError
from envkit.runtime import image_config
from envkit.runtime.config import BindMount, ContainerConfig, Mount, TmpfsMount

if TYPE_CHECKING:
    from envkit.runtime.spawn import Container as Engine
    from envkit.spec import Image

log = logging.getLogger("envkit.containers")


@dataclass(frozen=True)
class RunOptions:
    """What ``docker run`` takes besides the image; ``None`` means "the image's"."""

    cmd: Sequence[str] | None = None
    entrypoint: Sequence[str] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    volumes: Sequence[str | BindMount] = ()
    tmpfs: Sequence[str] = ()
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    read_only: bool = False
    name: str | None = None
    stdio: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class Prepared:
    """A container ready to start: its id, its state dir and the engine's config."""

    id: str
    state_dir: Path
    config: ContainerConfig


class Container:
    """A running container started by :func:`run`.

    ``wait()`` returns the exit code, ``kill(sig)`` signals it, ``pid`` is the host pid of
    its init. Leaving the ``with`` block kills it if still running; its upper and work
    dirs are removed once it exited.
    """

    def __init__(self, prepared: Prepared, engine: Engine, name: str | None) -> None:
        self.id = prepared.id
        self.name = name or prepared.id[:12]
        self._prepared = prepared
        self._engine = engine

    @property
    def pid(self) -> int:
        """Host pid of the container's init (pid 1 inside)."""
        return self._engine.pid

    @property
    def returncode(self) -> int | None:
        """The exit code once :meth:`wait` returned, else ``None``."""
        return self._engine.returncode

    def kill(self, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` to the container (its init passes it to the command)."""
        self._engine.kill(sig)

    def wait(self) -> int:
        """Wait for the container to exit; its exit code (128+N for signal N)."""
        try:
            return self._engine.wait()
        finally:
            remove_state(self._prepared.state_dir)

    def __enter__(self) -> Container:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.returncode is None:
            self.kill(signal.SIGKILL)
        self.wait()

    def __repr__(self) -> str:
        return f"<Container {self.name} {self.id[:12]}>"


def run(
    image: str | Image,
    cmd: Sequence[str] | None = None,
    *,
    entrypoint: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    volumes: Sequence[str | BindMount] = (),
    tmpfs: Sequence[str] = (),
    workdir: str | None = None,
    user: str | None = None,
    hostname: str | None = None,
    read_only: bool = False,
    name: str | None = None,
    stdio: tuple[int, int, int] | None = None,
) -> Container:
    """Start a container of ``image`` (a name, id or digest in the store, or
    ``Image.from_(ref)``) and return it once its command runs.

    ``cmd`` replaces the image's Cmd, ``entrypoint`` its Entrypoint (and clears Cmd);
    ``volumes`` are ``"SRC:DST[:ro]"`` strings or :class:`BindMount`; ``tmpfs`` are
    container paths; ``stdio`` host fds for 0, 1, 2 (default: inherited)::

        with envkit.run("busybox", ["sh", "-c", "echo hi"]) as c:
            assert c.wait() == 0
    """
    from envkit.runtime.spawn import start

    options = RunOptions(
        cmd=cmd,
        entrypoint=entrypoint,
        env=dict(env or {}),
        volumes=volumes,
        tmpfs=tmpfs,
        workdir=workdir,
        user=user,
        hostname=hostname,
        read_only=read_only,
        name=name,
        stdio=stdio,
    )
    prepared = prepare(image, options)
    try:
        engine = start(prepared.config)
    except BaseException:
        remove_state(prepared.state_dir)
        raise
    return Container(prepared, engine, name)


def run_foreground(image: str | Image, options: RunOptions) -> int:
    """Run a container in the foreground, as ``docker run`` does; its exit code.

    stdio is inherited and signals sent to the caller are passed on
    (:func:`envkit.runtime.spawn.run`). The container's dirs are removed afterwards.
    """
    from envkit.runtime.spawn import run as run_engine

    prepared = prepare(image, options)
    try:
        return run_engine(prepared.config)
    finally:
        remove_state(prepared.state_dir)


def prepare(image: str | Image, options: RunOptions) -> Prepared:
    """Snapshots of the image's layers, a fresh state dir and the engine's config."""
    from envkit.settings import home
    from envkit.store import snapshots
    from envkit.store.layout import Store

    store = Store.default()
    _, manifest = store.image_manifest(store.resolve(_image_ref(image)))
    config = store.config(manifest)
    snapshot = snapshots.prepare(store, [d.digest for d in manifest.layers], config.diff_ids)
    settings = config.config
    layers = snapshot.layers
    who = image_config.resolve_user(
        options.user if options.user is not None else str(settings.get("User") or ""),
        image_config.read_image_file(layers, "/etc/passwd"),
        image_config.read_image_file(layers, "/etc/group"),
    )
    argv = image_config.command(settings, options.cmd, options.entrypoint)
    env = image_config.environment(settings, options.env, home=who.home)
    cwd = image_config.workdir(settings, options.workdir)
    mounts = _mounts(options)
    container_id = secrets.token_hex(32)
    state_dir = home() / "containers" / container_id
    (state_dir / "upper").mkdir(parents=True)
    (state_dir / "work").mkdir()
    try:
        engine_config = ContainerConfig(
            layers=layers,
            argv=argv,
            upper_dir=str(state_dir / "upper"),
            work_dir=str(state_dir / "work"),
            env=env,
            cwd=cwd,
            uid=who.uid,
            gid=who.gid,
            groups=who.groups,
            hostname=options.hostname or container_id[:12],
            mounts=mounts,
            readonly_root=options.read_only,
            stdio=options.stdio,
        )
    except BaseException:
        remove_state(state_dir)
        raise
    return Prepared(container_id, state_dir, engine_config)


def remove_state(state_dir: Path) -> None:
    """Remove a container's dirs, including overlay's mode-0 ``work/work``.

    Files a non-root container user wrote belong to subordinate ids, which an
    unprivileged caller cannot remove; those are removed from inside a user namespace
    with the container's id maps, where the caller is root over them.
    """
    if not state_dir.exists():
        return
    try:
        _remove_tree(state_dir)
    except OSError as exc:
        if os.geteuid() == 0 or not _remove_in_userns(state_dir):
            log.warning("cannot remove container dir %s: %s", state_dir, exc.strerror or exc)


def _remove_tree(top: Path) -> None:
    for dirpath, dirnames, _ in os.walk(top):
        for name in dirnames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                with suppress(OSError):
                    os.chmod(path, 0o700)
    shutil.rmtree(top)


def _remove_in_userns(top: Path) -> bool:
    """:func:`_remove_tree` as root of a new user namespace with the container's maps."""
    from envkit.runtime import idmap, syscalls

    maps = idmap.plan()
    if maps.single_id:
        return False  # every file already belongs to the caller: nothing more to gain
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            os.close(ready_r)
            os.close(go_w)
            syscalls.unshare(syscalls.CLONE_NEWUSER)
            os.write(ready_w, b"u")
            if os.read(go_r, 1) == b"g":
                os.setresgid(0, 0, 0)
                os.setresuid(0, 0, 0)
                _remove_tree(top)
                code = 0
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(go_r)
    try:
        if os.read(ready_r, 1) == b"u":
            maps.write(pid)
            os.write(go_w, b"g")
    except (OSError, RuntimeError_) as exc:
        log.debug("user namespace for removing %s failed: %s", top, exc)
    finally:
        os.close(ready_r)
        os.close(go_w)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0 and not top.exists()


def _image_ref(image: object) -> str:
    if isinstance(image, str):
        return image
    base = getattr(image, "base", None)
    if base is not None and getattr(base, "kind", "") == "ref" and not getattr(image, "steps", ()):
        return str(base.ref)
    if base is not None:
        raise RuntimeError_(
            f"cannot run {image!r}: building images comes in a later issue",
            hint="run an image already in the store: envkit.run('name:tag') or "
            "envkit.run(Image.from_('name:tag'))",
        )
    raise SpecError("image", "expected an image name, id or Image.from_(ref)", value=image)


def _mounts(options: RunOptions) -> list[Mount]:
    mounts: list[Mount] = []
    for volume in options.volumes:
        mounts.append(volume if isinstance(volume, BindMount) else BindMount.parse(volume))
    mounts += [TmpfsMount(target) for target in options.tmpfs]
    return mounts
