"""From an image and run options to a container ready to start: its record and dirs
(``$ENVKIT_HOME/containers/<id>/``), image resolution (pulling what is missing) and the
engine's :class:`~envkit.runtime.config.ContainerConfig`. Docker's image-config rules are
in :mod:`envkit.runtime.image_config`."""

from __future__ import annotations

import os

from envkit.container.options import RunOptions
from envkit.errors import ImageNotFoundError, SpecError
from envkit.runtime import image_config
from envkit.runtime import state as st
from envkit.runtime.config import BindMount, ContainerConfig, Mount, TmpfsMount

#: docker's network name for the caller's own network namespace.
HOST_NETWORK = "host"

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import TextIO

    from envkit.network.attach import Attachment
    from envkit.spec import Image
    from envkit.store.resolved import Resolved


class Prepared:
    """A container ready to start: its record and the engine's config; ``network``: its
    networks and published ports, ``None`` for loopback only."""

    __slots__ = ("config", "network", "state")

    def __init__(
        self, state: st.ContainerState, config: ContainerConfig, network: Attachment | None = None
    ) -> None:
        self.state, self.config, self.network = state, config, network

    def replace(self, config: ContainerConfig) -> Prepared:
        """The same container with another engine config."""
        return Prepared(self.state, config, self.network)

    @property
    def id(self) -> str:
        return self.state.id

    def abandon(self) -> None:
        """The container did not start: give back its ports and networks, drop its record."""
        try:
            if self.network is not None:
                self.network.release()
        finally:
            st.remove(self.state)


def prepare(image: str | Image, options: RunOptions) -> Prepared:
    """Snapshots of the image's layers, the container's record and dirs, the engine's
    config (and its cgroup when limits are asked for)."""
    ref = _image_ref(image)
    from envkit.store.resolved import holding  # lazy for start-up: run's fast path (downward)

    # Until the record exists, prune keeps the snapshots picked here (see holding).
    with holding():
        image_info = _resolve_pulling(ref, options.pull, options.pull_output)
        settings, layers = image_info.settings, image_info.layers
        who = image_config.resolve_user(
            options.user if options.user is not None else str(settings.get("User") or ""),
            image_config.read_image_file(layers, "/etc/passwd"),
            image_config.read_image_file(layers, "/etc/group"),
        )
        argv = image_config.command(settings, options.cmd, options.entrypoint)
        env = image_config.environment(settings, options.env, home=who.home)
        cwd = image_config.workdir(settings, options.workdir)
        mounts, named = _mounts(options)
        capabilities = None
        if options.cap_add or options.cap_drop:
            from envkit.runtime import caps  # lazy: only with --cap-add/--cap-drop

            capabilities = caps.resolve(options.cap_add, options.cap_drop)
        engine_argv = argv
        if options.init:
            from envkit.runtime import init  # lazy: only with --init

            mounts.append(BindMount(init.find_init(), init.INIT_PATH, readonly=True))
            engine_argv = [init.INIT_PATH, "--", *argv]
        stop_signal = 15  # SIGTERM
        if options.stop_signal is not None or settings.get("StopSignal"):
            from envkit.spec import signals  # lazy: only with a stop signal

            stop_signal = signals.stop_signal(options.stop_signal, settings.get("StopSignal"))
        record = st.create(
            name=options.name,
            image=ref,
            image_id=image_info.image_id,
            argv=list(argv),
            auto_remove=options.remove,
            env=dict(env),
            cwd=cwd,
            uid=who.uid,
            gid=who.gid,
            groups=list(who.groups),
            tty=options.tty,
            seccomp=options.seccomp,
            capabilities=None if capabilities is None else sorted(capabilities),
            stop_signal=stop_signal,
            volumes=sorted({name for name, _, _ in named}),
        )
    network: Attachment | None = None
    try:
        os.mkdir(record.path("upper"))
        os.mkdir(record.path("work"))
        if named:
            mounts += _named_volumes(named, record.id, layers, who.uid, who.gid)
        hostname = options.hostname or record.id[:12]
        host_network = _host_network(options)
        if host_network:
            mounts += _host_name_files()
        elif options.networks or options.ports or options.extra_hosts:
            # lazy: only with networks or ports (downward)
            from envkit.network.attach import Attachment

            network = Attachment.plan(
                record.name,
                options.networks,
                options.network_aliases,
                options.ports,
                extra_hosts=options.extra_hosts,
                hostname=hostname,
            )
            if network is not None:
                mounts += network.mounts()
                # Whoever finishes the container (its monitor, a stack supervisor that
                # adopted it) takes it off these networks.
                record.networks = list(network.networks)
                record.save()
        if options.limits:
            from envkit.runtime import cgroups  # lazy: only with limits

            record.cgroup = cgroups.create(options.limits, f"envkit-{record.id[:12]}")
            record.save()
        engine_config = ContainerConfig(
            layers=layers,
            argv=engine_argv,
            upper_dir=record.path("upper"),
            work_dir=record.path("work"),
            env=env,
            cwd=cwd,
            uid=who.uid,
            gid=who.gid,
            groups=who.groups,
            hostname=hostname,
            mounts=mounts,
            readonly_root=options.read_only,
            stdio=options.stdio,
            tty=options.tty,
            tty_size=terminal_size() if options.tty else (0, 0),
            cgroup=record.cgroup or None,
            seccomp=options.seccomp,
            capabilities=capabilities,
            host_network=host_network,
            shm_size=options.shm_size,
            ulimits=options.ulimits,
            sysctls=options.sysctls,
        )
    except BaseException:
        if network is not None:
            network.close_ports()
        st.remove(record)
        raise
    return Prepared(record, engine_config, network)


def _resolve(ref: str) -> Resolved:
    """The image's id, config and snapshot lower dirs: remembered from an earlier run
    (:mod:`envkit.store.resolved`), else from the store, extracting missing snapshots."""
    from envkit.store import resolved  # lazy for start-up: run's fast path (downward)

    found = resolved.lookup(ref)
    if found is not None:
        return found
    stamp = resolved.index_stamp()
    # lazy: only when the run-cache misses (downward)
    from envkit.store import snapshots
    from envkit.store.store import Store

    manifest, config, snapshot = snapshots.prepare_image(Store.default(), ref)
    found = resolved.Resolved(str(manifest.config.digest), dict(config.config), snapshot.layers)
    if stamp is not None:
        resolved.remember(ref, found, snapshot.marks, stamp)
    return found


def _resolve_pulling(ref: str, policy: str, output: TextIO | None) -> Resolved:
    """:func:`_resolve`, after pulling ``ref`` as the pull ``policy`` says
    (:mod:`envkit.pulling`, imported only when the store lacks the image or the policy is
    ``always``). Called holding the store lock shared, as a pull itself holds it."""
    if policy == "always":
        from envkit import pulling  # lazy: only when pulling (see the docstring)

        if pulling.remote(ref) is not None:
            pulling.pull(ref, missing=False, stream=output)
        return _resolve(ref)
    try:
        return _resolve(ref)
    except ImageNotFoundError as exc:
        from envkit import pulling  # lazy: only when pulling (see the docstring)

        if policy == "never":
            raise pulling.not_present(ref, exc) from None
        if pulling.remote(ref) is None:
            raise
    pulling.pull(ref, missing=True, stream=output)
    return _resolve(ref)


def _image_ref(image: object) -> str:
    if isinstance(image, str):
        return image
    base = getattr(image, "base", None)
    if base is not None and getattr(base, "kind", "") == "ref" and not getattr(image, "steps", ()):
        return str(base.ref)
    build = getattr(image, "build", None)
    if base is not None and callable(build):
        # Like `docker run` of a Dockerfile's result: build (cached: a no-op when nothing
        # changed), then run the built image by its manifest digest.
        return str(build().digest)
    raise SpecError("image", "expected an image name, id or Image.from_(ref)", value=image)


def _mounts(options: RunOptions) -> tuple[list[Mount], list[tuple[str, str, bool]]]:
    """The bind and tmpfs mounts of ``options``, and its named volumes as (name, target,
    read-only): docker's ``-v NAME:/path``, where a relative ``./dir`` is a host path
    (made absolute, as docker's CLI does since 23.0)."""
    mounts: list[Mount] = []
    named: list[tuple[str, str, bool]] = []
    for volume in options.volumes:
        if isinstance(volume, BindMount):
            mounts.append(volume)
            continue
        source, sep, rest = volume.partition(":")
        if source.startswith("."):
            volume = os.path.abspath(source) + sep + rest
        elif sep and source and not source.startswith("/"):
            from envkit.plugins.directory_backend import check_name  # lazy: named only

            parsed = BindMount.parse("/" + volume)  # the target and mode, checked as a bind's
            named.append((check_name("volume name", source), parsed.target, parsed.readonly))
            continue
        mounts.append(BindMount.parse(volume))
    mounts += [TmpfsMount.parse(entry) for entry in options.tmpfs]
    return mounts, named


def _host_network(options: RunOptions) -> bool:
    """``--network host`` (docker's): the container stays in the caller's network
    namespace, alone (no other network, published port, alias or --add-host)."""
    if HOST_NETWORK not in options.networks:
        return False
    if len(options.networks) > 1 or options.ports or options.network_aliases or options.extra_hosts:
        raise SpecError(
            "--network host",
            "cannot be combined with other networks, published ports, aliases or --add-host",
            hint="on the host's network a port is the host's: drop -p (the service listens "
            "on the host directly)",
        )
    return True


def _host_name_files() -> list[Mount]:
    """The host's /etc/resolv.conf and /etc/hosts, read-only, as docker gives a
    host-network container."""
    return [
        BindMount(path, path, readonly=True)
        for path in ("/etc/resolv.conf", "/etc/hosts")
        if os.path.exists(path)
    ]


def _named_volumes(
    named: list[tuple[str, str, bool]], mount_id: str, layers: Sequence[str], uid: int, gid: int
) -> list[Mount]:
    """Bind mounts of the local backend's volumes ``named``, each created when missing
    and, when empty, seeded from the image's files at its target (docker's rule) or
    handed to the container's user; they outlive the container (``envkit volume rm``)."""
    # lazy: pluggy and the seeding helpers, only with named volumes
    from pathlib import Path

    from envkit.container.volume_seed import hand_empty_to, seed_dir
    from envkit.plugins.manager import get_manager

    backend = get_manager().volume_backend("local")
    have = set(backend.list())
    mounts: list[Mount] = []
    for name, target, readonly in named:
        if name not in have:
            backend.create(name, {})
            have.add(name)
        path = Path(backend.mount(name, mount_id).source)
        if not readonly and not seed_dir(path, layers, target):
            hand_empty_to([path], uid, gid)
        mounts.append(BindMount(str(path), target, readonly=readonly))
    return mounts


def terminal_size() -> tuple[int, int]:
    from envkit.runtime.tty import window_size  # lazy: only with a terminal

    return window_size(0, 1)


def layers_of(record: st.ContainerState) -> list[str]:
    return list(_resolve(record.image_id).layers)
