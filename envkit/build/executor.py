"""Build an Image: plan its stages and keys, reuse cached steps, execute the rest.

:func:`build` plans (:func:`envkit.build.keys.plan`, the context's stat index makes this
cheap), then finds for the requested image the last step whose result is cached. A fully
cached image takes the fast path: its manifest and config are written (they usually
exist already) and it is tagged; no base is provided, no container started, no layer
written. Otherwise the steps after the last hit execute, and so do the stages that the
executed ``copy(from_=...)`` steps read, independent stages in parallel threads. Each
executed step holds its key's lock, looks the cache up again (a concurrent build may have
just made it), runs, and records the state after it.

Layers are gzip: zstd would be smaller and faster, but podman 4.3 and older docker
cannot read zstd layers. Timestamps come from ``SOURCE_DATE_EPOCH`` (0 when unset), so
the same inputs give the same image id and manifest digest, with or without the cache
and on another machine.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

from envkit.build.cache import StepCache
from envkit.build.image_state import ImageState, build_epoch
from envkit.build.keys import BuildPlan, StagePlan, StepPlan, plan, store_resolver
from envkit.build.listeners import step_finished, stored_ref
from envkit.build.lockfile import LOCK_NAME, LockFile
from envkit.build.progress import Progress
from envkit.errors import BuildError
from envkit.oci.reference import parse
from envkit.oci.types import MT_OCI_MANIFEST, Descriptor, canonical_json
from envkit.records import Record, Value, field
from envkit.spec import steps as st
from envkit.spec.bases import Archive, Base, FromRef, Scratch
from envkit.store.store import Store

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from envkit.build.copy_layer import LayerEntry
    from envkit.build.lockfile import LockResolver
    from envkit.build.rootfs_view import RootView
    from envkit.oci.layer_writer import Compression, LayerInfo
    from envkit.spec.image import Image

#: Label holding the envkit form of the health check (seconds as floats, exactly).
HEALTHCHECK_LABEL = "io.envkit.healthcheck"


class BuildResult(Value):
    """A built image: its manifest in the store, its id, and what the build did."""

    manifest: Descriptor
    image_id: str
    """The config digest, as ``docker build`` prints it."""
    tag: str | None = None
    executed: int = 0
    cached: int = 0

    @property
    def digest(self) -> str:
        """The manifest digest."""
        return self.manifest.digest


class _Counters(Record):
    lock: threading.Lock = field(default_factory=threading.Lock)
    executed: int = 0
    cached: int = 0
    next_id: int = 0

    def sid(self) -> int:
        with self.lock:
            self.next_id += 1
            return self.next_id


def build(
    image: Image,
    context: str | os.PathLike[str] = ".",
    *,
    tag: str | None = None,
    no_cache: bool = False,
    progress: Progress | None = None,
    store: Store | None = None,
    compression: Compression = "gzip",
) -> BuildResult:
    """Build ``image`` with ``context`` as build context; tag it ``tag`` or keep it by
    digest. Raises :class:`BuildError` (exit code 1) when a step fails: nothing is
    tagged and no temporary file or container is left behind.

    Unpinned bases go through ``<context>/envkit.lock`` only when that file exists
    (:mod:`envkit.build.lockfile`); ``envkit build`` creates it.
    """
    lock_path = Path(context).absolute() / LOCK_NAME
    builder = Builder(
        store or Store.default(),
        no_cache=no_cache,
        progress=progress,
        compression=compression,
        lock=LockFile.load(lock_path) if lock_path.is_file() else None,
    )
    return builder.build(image, Path(context), tag=tag)


class Builder:
    """One build session over a store; reusable for several images (a stack's).

    With a ``lock``, unpinned bases resolve through it and new ones are recorded in it
    (written after planning each image).
    """

    def __init__(
        self,
        store: Store,
        *,
        no_cache: bool = False,
        progress: Progress | None = None,
        compression: Compression = "gzip",
        lock: LockFile | None = None,
    ) -> None:
        self.store = store
        self.lock = lock
        self._locked: LockResolver | None = lock.resolver(store) if lock is not None else None
        self.no_cache = no_cache
        self.progress = progress or Progress()
        self.compression: Compression = compression
        self.cache = StepCache()
        self._epoch: int | None = None
        self._swept = False
        self._counters = _Counters()

    @property
    def epoch(self) -> int:
        """The build's timestamp (:func:`~envkit.build.image_state.build_epoch`), read
        when a step first executes."""
        if self._epoch is None:
            self._epoch = build_epoch()
        return self._epoch

    def build(self, image: Image, context: Path, *, tag: str | None = None) -> BuildResult:
        """Build one image (see :func:`build`)."""
        context = context.absolute()
        if tag is not None:
            parse(tag)  # a bad tag fails before any work
        with self.store.shared():
            the_plan = self._plan(image, context)
            finished = self._final_state(the_plan, context).finished()
            desc = self._publish(finished, tag)
        return BuildResult(
            manifest=desc,
            image_id=finished.manifest().config.digest,
            tag=tag,
            executed=self._counters.executed,
            cached=self._counters.cached,
        )

    def _plan(self, image: Image, context: Path) -> BuildPlan:
        if self._locked is None:
            return plan(image, context, resolve=store_resolver(self.store))
        the_plan = plan(image, context, resolve=self._locked)
        assert self.lock is not None
        if self.lock.save() and self.lock.path.absolute().is_relative_to(context):
            # The lock file just written is part of the context a copy may read.
            the_plan = plan(image, context, resolve=self._locked)
        return the_plan

    # -- stages --------------------------------------------------------------------

    def _final_state(self, the_plan: BuildPlan, context: Path) -> ImageState:
        hits: dict[int, tuple[int, ImageState | None]] = {}
        needed: set[int] = set()
        queue = [the_plan.final.index]
        while queue:
            index = queue.pop()
            if index in needed:
                continue
            needed.add(index)
            stage = the_plan.stages[index]
            hits[index] = self._last_hit(stage)
            first = hits[index][0] + 1
            queue += [s.from_stage for s in stage.steps[first:] if s.from_stage is not None]
        results: dict[int, ImageState] = {}
        for wave in the_plan.waves():
            todo = [i for i in wave if i in needed]

            def run(i: int) -> ImageState:
                return self._stage(the_plan.stages[i], hits[i], results, context)

            if len(todo) == 1:
                results[todo[0]] = run(todo[0])
            elif todo:
                from concurrent.futures import ThreadPoolExecutor  # lazy: only for parallel stages

                with ThreadPoolExecutor(max_workers=min(len(todo), 4)) as pool:
                    futures = {i: pool.submit(run, i) for i in todo}
                    for i, future in futures.items():
                        results[i] = future.result()
        return results[the_plan.final.index]

    def _last_hit(self, stage: StagePlan) -> tuple[int, ImageState | None]:
        """The index of the last cached step of ``stage`` and its state (-1, None: none)."""
        if self.no_cache:
            return -1, None
        for index in range(len(stage.steps) - 1, -1, -1):
            found = self.cache.get(stage.steps[index].key, self.store)
            if found is not None:
                return index, found
        return -1, None

    def _stage(
        self,
        stage: StagePlan,
        hit: tuple[int, ImageState | None],
        results: dict[int, ImageState],
        context: Path,
    ) -> ImageState:
        last, state = hit
        total = len(stage.steps)
        for index in range(last + 1):
            label = _label(stage, index, total)
            self.progress.cached(self._counters.sid(), label)
            _notify(label, stage.steps[index].key, cached=True, seconds=0.0)
            with self._counters.lock:
                self._counters.cached += 1
        if state is None:
            state = self._base_state(stage.base, context)
        cmd_set = any(isinstance(s.step, st.Cmd) for s in stage.steps[: last + 1])
        for index in range(last + 1, total):
            planned = stage.steps[index]
            label = _label(stage, index, total)
            source = results.get(planned.from_stage) if planned.from_stage is not None else None
            state = self._step(planned, state, source, label, context, cmd_set)
            cmd_set = cmd_set or isinstance(planned.step, st.Cmd)
        return state

    def _base_state(self, base: Base, context: Path) -> ImageState:
        if isinstance(base, Scratch):
            return ImageState.scratch()
        params = dict(base.params())
        pinned = (
            self._locked.pinned(base.ref) if self._locked and isinstance(base, FromRef) else None
        )
        if pinned:
            params["digest"] = pinned
        if isinstance(base, Archive) and not os.path.isabs(base.path):
            params["path"] = str(context / base.path)
        desc = self._stored_base(base, pinned)
        if desc is None:
            # lazy: pluggy only when the store lacks a base
            from envkit.plugins.manager import get_manager

            desc = get_manager().image_source(base.kind).provide(params, self.store)
        _, manifest = self.store.image_manifest(desc)
        config = self.store.config(manifest)
        return ImageState(manifest.layers, config.raw)

    def _stored_base(self, base: Base, pinned: str | None) -> Descriptor | None:
        """A registry base already in the local store, found without the plugins when
        only envkit's own can be installed (:func:`envkit.build.listeners.stored_ref`)."""
        if not isinstance(base, FromRef):
            return None

        return stored_ref(self.store, pinned or base.ref)

    # -- steps ---------------------------------------------------------------------

    def _step(
        self,
        planned: StepPlan,
        state: ImageState,
        source: ImageState | None,
        label: str,
        context: Path,
        cmd_set: bool,
    ) -> ImageState:
        sid = self._counters.sid()
        with self.cache.lock(planned.key):
            found = None if self.no_cache else self.cache.get(planned.key, self.store)
            if found is not None:
                self.progress.cached(sid, label)
                _notify(label, planned.key, cached=True, seconds=0.0)
                with self._counters.lock:
                    self._counters.cached += 1
                return found
            self._sweep()
            self.progress.start(sid, label)
            began = time.monotonic()
            try:
                after = self._execute(planned, state, source, label, context, cmd_set, sid)
            except BuildError as exc:
                self.progress.failed(sid, exc.message.splitlines()[0])
                raise
            self.cache.put(planned.key, after)
            seconds = time.monotonic() - began
            self.progress.done(sid, seconds)
            _notify(label, planned.key, cached=False, seconds=seconds)
            with self._counters.lock:
                self._counters.executed += 1
            return after

    def _sweep(self) -> None:
        """Remove what a killed build left (its dirs, its temp files), once, before the
        first step executes: a fully cached build made nothing and sweeps nothing."""
        with self._counters.lock:
            if self._swept:
                return
            self._swept = True
        # lazy: a fully cached build does not load it
        from envkit.build.sweep import after_crash

        after_crash(self.store)

    def _execute(
        self,
        planned: StepPlan,
        state: ImageState,
        source: ImageState | None,
        label: str,
        context: Path,
        cmd_set: bool,
        sid: int,
    ) -> ImageState:
        step = planned.step
        created_by = label.split("] ", 1)[-1]
        xs = _dockerfile_steps()
        if xs is not None and isinstance(step, xs.ExpandCopy | xs.ExpandWriteFile):
            from envkit.build.dockerfile_expand import resolve  # lazy: only Dockerfile steps

            step = resolve(step, state.settings)[0]
            created_by = describe(step)
        if isinstance(step, st.Run):
            # lazy: a fully cached build does not load it
            from envkit.build.run_step import execute_run

            info = execute_run(
                step,
                state,
                self.store,
                label=label,
                base_dir=context,
                epoch=self.epoch,
                compression=self.compression,
                on_output=lambda line: self.progress.output(sid, line),
                bind_context=planned.context or context,
                bind_inputs=planned.inputs,
            )
            return state.with_layer(info.descriptor(), info.diff_id, created_by)
        if isinstance(step, st.Copy):
            info = self._copy_layer(planned, step, state, source, context)
            return state.with_layer(info.descriptor(), info.diff_id, created_by)
        if xs is not None and isinstance(step, xs.SetAuthor):
            return state.with_settings({}, created_by, top={"author": step.author})
        return state.with_settings(config_change(step, state, cmd_set), created_by)

    def _copy_layer(
        self,
        planned: StepPlan,
        step: st.Copy,
        state: ImageState,
        source: ImageState | None,
        context: Path,
    ) -> LayerInfo:
        # Imported here: a fully cached build never copies, and pays nothing for these.
        from envkit.build.rootfs_view import RootView

        view = RootView.of(self.store, state)
        from_view = None
        if step.from_ is not None:
            if source is None:
                raise BuildError(f"copy {step.src}: its source stage was not built (envkit bug)")
            from_view = RootView.of(self.store, source)
        # lazy: only executed copies
        from envkit.host.as_root import subordinate_owners, with_container_owners

        if from_view is None or not subordinate_owners():
            return self._write_entries(
                self._copy_entries(planned, step, state, view, from_view, context)
            )
        # Rootless, the stage's files keep their owners as subordinate ids, which this
        # process may not read: the layer is written as container root.
        inside, inside_from = view.as_container_root(), from_view.as_container_root()

        def write() -> list[object]:
            entries = self._copy_entries(planned, step, state, inside, inside_from, context)
            info = self._write_entries(entries)
            return [info.digest, info.size, info.diff_id, info.media_type, list(info.skipped)]

        result = with_container_owners(write, BuildError)
        assert isinstance(result, list)
        digest, size, diff_id, media_type, skipped = result
        # lazy: a fully cached build does not load it
        from envkit.oci.layer_writer import LayerInfo

        return LayerInfo(str(digest), int(size), str(diff_id), str(media_type), tuple(skipped))

    def _copy_entries(
        self,
        planned: StepPlan,
        step: st.Copy,
        state: ImageState,
        view: RootView,
        from_view: RootView | None,
        context: Path,
    ) -> list[LayerEntry]:
        from envkit.build import copy_step  # lazy: only executed copies

        xs = _dockerfile_steps()
        if xs is not None and isinstance(step, xs.WriteFile):
            return copy_step.write_file_entries(step, state, view)
        read_from = planned.context or context
        if from_view is not None:
            return copy_step.stage_entries(step, state, view, from_view)
        selection = copy_step.from_context(step, read_from, planned.inputs)
        if xs is not None and isinstance(step, xs.AddArchive):
            return copy_step.archive_entries(step, state, view, selection, read_from)
        return copy_step.context_entries(step, state, view, selection, read_from)

    def _write_entries(self, entries: list[LayerEntry]) -> LayerInfo:
        # lazy: a fully cached build does not load it
        from envkit.build.copy_layer import write_entries
        from envkit.store.atomic import TempFile

        with self.store.shared(), TempFile(self.store.tmp_dir, "layer") as tmp:
            info = write_entries(entries, tmp.file, epoch=self.epoch, compression=self.compression)
            # A layer the store has (a rebuild's) is dropped unsynced: see run_step.
            if not self.store.has_blob(info.digest):
                tmp.commit(self.store.blob_path(info.digest), replace=False)
        return info

    # -- result --------------------------------------------------------------------

    def _publish(self, state: ImageState, tag: str | None) -> Descriptor:
        self.store.write_blob(state.config_bytes())
        desc = self.store.put_manifest(state.manifest().to_bytes(), MT_OCI_MANIFEST)
        if tag is None:
            if all(d.digest != desc.digest for _, d in self.store.entries()):
                self.store.keep(desc)
        elif self._tagged(tag) != desc.digest:  # a rebuild of the same image: no rewrite
            self.store.tag(tag, desc)
        return desc

    def _tagged(self, tag: str) -> str | None:
        found = self.store.refs().get(str(parse(tag)))
        return None if found is None else found.digest


def config_change(step: st.Step, state: ImageState, cmd_set: bool = False) -> dict[str, Any]:
    """What a config-only step changes in the config's ``config`` object."""
    settings = state.settings
    xs = _dockerfile_steps()
    if xs is not None and isinstance(step, xs.ExpandConfig):
        from envkit.build.dockerfile_expand import resolve  # lazy: only Dockerfile steps

        change: dict[str, Any] = {}
        current = state
        for concrete in resolve(step, settings):
            found = config_change(concrete, current, cmd_set)
            change.update(found)
            current = ImageState(
                current.layers, {**current.config, "config": {**settings, **change}}
            )
        return change
    if xs is not None and isinstance(step, xs.SetVolumes):
        volumes = dict(settings.get("Volumes") or {})
        volumes.update((path, {}) for path in step.paths)
        return {"Volumes": dict(sorted(volumes.items()))}
    if xs is not None and isinstance(step, xs.SetStopSignal):
        return {"StopSignal": step.signal}
    if isinstance(step, st.Env):
        env = dict(item.partition("=")[::2] for item in settings.get("Env") or [])
        env.update(step.values)
        return {"Env": [f"{k}={v}" for k, v in env.items()]}
    if isinstance(step, st.Workdir):
        base = str(settings.get("WorkingDir") or "/")
        return {"WorkingDir": os.path.normpath(os.path.join(base, step.path))}
    if isinstance(step, st.User):
        return {"User": step.user}
    if isinstance(step, st.Expose):
        ports = dict(settings.get("ExposedPorts") or {})
        ports[f"{step.port}/{step.proto}"] = {}
        return {"ExposedPorts": dict(sorted(ports.items()))}
    if isinstance(step, st.Entrypoint):
        reset: dict[str, Any] = {"Entrypoint": list(step.argv) or None}
        if not cmd_set:
            reset["Cmd"] = None  # as docker: ENTRYPOINT resets a Cmd inherited from the base
        return reset
    if isinstance(step, st.Cmd):
        return {"Cmd": list(step.argv) or None}
    if isinstance(step, st.Label):
        labels = dict(settings.get("Labels") or {})
        labels.update(step.values)
        return {"Labels": labels}
    if isinstance(step, st.SetHealthcheck):
        return healthcheck_change(step, settings)
    raise BuildError(f"unknown step {type(step).__name__} (envkit bug)")


def healthcheck_change(step: st.SetHealthcheck, settings: dict[str, Any]) -> dict[str, Any]:
    """Docker's ``Healthcheck`` (durations in ns) plus the exact envkit form as a label."""
    check = step.healthcheck
    labels = dict(settings.get("Labels") or {})
    labels[HEALTHCHECK_LABEL] = canonical_json(check.canonical()).decode()
    docker: dict[str, Any] = {"Test": list(check.test)}
    if not check.disabled:
        docker.update(
            Interval=int(check.interval * 1e9),
            Timeout=int(check.timeout * 1e9),
            Retries=check.retries,
            StartPeriod=int(check.start_period * 1e9),
        )
        if check.start_interval_set:
            docker["StartInterval"] = int(check.start_interval * 1e9)
    return {"Healthcheck": docker, "Labels": labels}


def _label(stage: StagePlan, index: int, total: int) -> str:
    return f"[{_stage_name(stage)}{index + 1}/{total}] {describe(stage.steps[index].step)}"


def _stage_name(stage: StagePlan) -> str:
    return f"stage-{stage.index} " if stage.index else ""


def describe(step: st.Step) -> str:
    """A step as the Dockerfile line docker prints for it (never a secret's value):
    ``ENV PORT=5000``, ``CMD ["python", "app.py"]``, ``RUN make``."""
    return _describe(step)[:200]


def _describe(step: st.Step) -> str:
    xs = _dockerfile_steps()
    if xs is not None:
        found = _describe_extra(step, xs)
        if found is not None:
            return found
    if isinstance(step, st.Run):
        argv = list(step.argv)
        if argv[:2] == ["/bin/sh", "-c"] and len(argv) == 3:
            return "RUN " + " ".join(argv[2].split())
        return "RUN " + _json_argv(argv)
    if isinstance(step, st.Copy):
        return _describe_copy(step)
    if isinstance(step, st.Env | st.Label):
        word = "ENV" if isinstance(step, st.Env) else "LABEL"
        return word + "".join(f" {k}={_quote(v)}" for k, v in step.values)
    if isinstance(step, st.Workdir):
        return f"WORKDIR {step.path}"
    if isinstance(step, st.User):
        return f"USER {step.user}"
    if isinstance(step, st.Expose):
        return f"EXPOSE {step.port}/{step.proto}"
    if isinstance(step, st.Entrypoint | st.Cmd):
        word = "CMD" if isinstance(step, st.Cmd) else "ENTRYPOINT"
        argv = list(step.argv)
        if argv[:2] == ["/bin/sh", "-c"] and len(argv) == 3:
            return f"{word} {argv[2]}"
        return f"{word} {_json_argv(argv)}"
    return _describe_healthcheck(step)


def _describe_extra(step: st.Step, xs: Any) -> str | None:
    """The line of a Dockerfile-only step (``xs`` is :mod:`envkit.build.dockerfile_steps`),
    or ``None`` for any other step."""
    if isinstance(step, xs.ExpandConfig):
        words = step.deferred.words
        if step.deferred.instruction in ("ENV", "LABEL"):
            pairs = " ".join(f"{k}={v}" for k, v in zip(words[::2], words[1::2], strict=True))
            return f"{step.deferred.instruction} {pairs}"
        return f"{step.deferred.instruction} {' '.join(words)}"
    if isinstance(step, xs.SetVolumes):
        return "VOLUME " + _json_argv(step.paths)
    if isinstance(step, xs.SetStopSignal):
        return f"STOPSIGNAL {step.signal}"
    if isinstance(step, xs.SetAuthor):
        return f"MAINTAINER {step.author}"
    return None


def _dockerfile_steps() -> Any:
    """:mod:`envkit.build.dockerfile_steps` when it is loaded, else ``None``.

    Its steps (what a Dockerfile imports to) exist only once the module is loaded, so a
    build of spec steps never imports it: a fully cached build pays for nothing it
    does not use.
    """
    return sys.modules.get("envkit.build.dockerfile_steps")


def _describe_copy(step: st.Copy) -> str:
    xs = _dockerfile_steps()
    flags = " --from=stage" if step.from_ is not None else ""
    if xs is not None and isinstance(step, xs.ExpandCopy | xs.ExpandWriteFile):
        dst, chown, chmod = step.deferred.words[:3]
    else:
        dst, chown = step.dst, step.chown or ""
        chmod = "" if step.chmod is None else f"{step.chmod:o}"
    flags += f" --chown={chown}" if chown else ""
    flags += f" --chmod={chmod}" if chmod else ""
    if xs is not None and isinstance(step, xs.WriteFile):
        return f"COPY{flags} <<{step.src} {dst}"
    extract = xs is not None and isinstance(step, xs.AddArchive)
    word = "ADD" if extract or getattr(step, "extract", False) else "COPY"
    return f"{word}{flags} {step.src} {dst}"


def _describe_healthcheck(step: st.SetHealthcheck) -> str:
    check = step.healthcheck
    test = list(check.test)
    if check.disabled:
        return "HEALTHCHECK NONE"
    options = (
        f"--interval={check.interval:g}s --timeout={check.timeout:g}s "
        f"--start-period={check.start_period:g}s --retries={check.retries}"
    )
    if check.start_interval_set:
        options += f" --start-interval={check.start_interval:g}s"
    if test[:1] == ["CMD-SHELL"] and len(test) == 2:
        return f"HEALTHCHECK {options} CMD {test[1]}"
    return f"HEALTHCHECK {options} CMD {_json_argv(test[1:])}"


def _json_argv(argv: Sequence[str]) -> str:
    return json.dumps(list(argv), ensure_ascii=False)


def _quote(value: str) -> str:
    """A value as ENV/LABEL print it: quoted when it holds white space or quotes."""
    if value and not any(c.isspace() or c in "\"'\\$" for c in value):
        return value

    return json.dumps(value, ensure_ascii=False)


def _notify(label: str, key: str, *, cached: bool, seconds: float) -> None:
    """``envkit_build_step_finished`` for plugins (a listener never fails the build)."""
    step_finished(label, key, cached=cached, seconds=seconds)
