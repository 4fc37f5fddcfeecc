"""Build plans and step cache keys, computed without executing anything.

A step's key is the sha256 of the canonical JSON of::

    {"v": FORMAT_VERSION, "parent": <key of the step before, or the base key>,
     "step": <the step's canonical form>, "inputs": <digest of what it reads>,
     "secrets": [<secret names>], "caches": [<cache ids>]}

``inputs`` is the digest of the context selection for a copy from the build context
(:mod:`envkit.build.context`), the key of the source stage for ``copy(from_=...)``, and
``None`` otherwise. Secrets enter a key by name only: neither their value nor where it
comes from changes a key. The base key covers the base's canonical form and, for a
registry reference, the manifest digest it resolves to when a resolver knows it; for an
image archive, the archive's content digest.

Images that ``copy(from_=...)`` reads from become stages of their own; :meth:`BuildPlan.waves`
groups the stages that do not depend on each other so that they can build in parallel.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from envkit.build.context import ContextHasher, hash_file
from envkit.errors import ImageNotFoundError, ReferenceError_
from envkit.oci.digest import sha256_bytes
from envkit.oci.types import canonical_json
from envkit.records import Value
from envkit.spec import steps as st
from envkit.spec.bases import Archive, Base, Dockerfile, FromRef, base_canonical
from envkit.spec.canonical import FORMAT_VERSION
from envkit.spec.image import Image

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import Any

    from envkit.store.store import Store

#: Maps a normalised image reference to its manifest digest, or ``None`` when unknown.
Resolver = Callable[[str], str | None]


class StepPlan(Value):
    """One step of a stage with its cache key."""

    step: st.Step
    key: str
    parent: str
    inputs: str | None = None
    context: Path | None = None
    """The build context a copy reads (``None`` for other steps and stage copies)."""
    from_stage: int | None = None
    """Index of the stage a ``copy(from_=...)`` reads."""

    @property
    def op(self) -> str:
        """The step's operation name (``"run"``, ``"copy"``, ...)."""
        return str(self.step.canonical()["op"])


class StagePlan(Value):
    """An image to build: its base key and its steps in order."""

    index: int
    image: Image
    base: Base
    base_key: str
    steps: tuple[StepPlan, ...]
    depends_on: tuple[int, ...]

    @property
    def key(self) -> str:
        """The key of the stage's result: its last step's key (the base key if none)."""
        return self.steps[-1].key if self.steps else self.base_key


class BuildPlan(Value):
    """Every stage needed for an image, dependencies first; the image itself is last."""

    stages: tuple[StagePlan, ...]

    @property
    def final(self) -> StagePlan:
        """The stage of the requested image."""
        return self.stages[-1]

    def waves(self) -> tuple[tuple[int, ...], ...]:
        """Stage indices grouped so that each group depends only on earlier groups."""
        level: dict[int, int] = {}
        for stage in self.stages:
            level[stage.index] = 1 + max((level[d] for d in stage.depends_on), default=-1)
        depth = max(level.values(), default=-1) + 1
        return tuple(tuple(i for i, lv in level.items() if lv == n) for n in range(depth))


def key_of(parts: dict[str, Any]) -> str:
    """``sha256:`` of the canonical JSON of ``parts`` with the format version added."""
    return sha256_bytes(canonical_json({"v": FORMAT_VERSION, **parts}))


def base_key(base: Base, context: Path, resolve: Resolver | None = None) -> str:
    """The key of a base: its canonical form plus what pins its content when known."""
    pinned: str | None = None
    if isinstance(base, FromRef) and resolve is not None:
        pinned = resolve(base.ref)
    elif isinstance(base, Archive):
        path = _resolve_path(base.path, context)
        if path.is_file():
            pinned = hash_file(path)
    return key_of({"base": base_canonical(base), "pinned": pinned})


def step_definition(step: st.Step) -> dict[str, Any]:
    """The part of a step's canonical form its key covers.

    A run's secrets are reduced to their names; a stage copy's source image is replaced
    by the source stage's key (passed as the step's inputs).
    """
    body = step.canonical()
    if isinstance(step, st.Run):
        body["secrets"] = sorted(s.name for s in step.secrets)
    elif isinstance(step, st.Copy) and not _writes_file(step):
        body["from"] = None if step.from_ is None else "stage"
    return body


def bind_inputs(hasher: ContextHasher, binds: Sequence[tuple[str, str]]) -> str:
    """What a run's context binds show it (:func:`bind_key` of their selections)."""
    return bind_key([(target, hasher.select(src).digest) for target, src in binds])


def bind_key(digests: Sequence[tuple[str, str]]) -> str:
    """The inputs of a run's binds: each target with its selection's digest."""
    return key_of({"binds": [list(pair) for pair in digests]})


def step_key(parent: str, step: st.Step, inputs: str | None = None) -> str:
    """The cache key of ``step`` run on ``parent`` reading ``inputs``."""
    secrets: list[str] = []
    caches: list[str] = []
    if isinstance(step, st.Run):
        secrets = sorted(s.name for s in step.secrets)
        caches = sorted({cache_id for _, cache_id in step.caches})
    return key_of(
        {
            "parent": parent,
            "step": step_definition(step),
            "inputs": inputs,
            "secrets": secrets,
            "caches": caches,
        }
    )


def plan(
    image: Image,
    context: str | os.PathLike[str],
    *,
    resolve: Resolver | None = None,
    use_index: bool = True,
) -> BuildPlan:
    """The stages and step keys of building ``image`` with ``context`` as build context.

    Relative paths of the spec (copy sources, archives, Dockerfiles) resolve against
    ``context``. Context files are hashed (through the stat index unless ``use_index``
    is false); nothing is built or run.
    """
    planner = _Planner(resolve, use_index)
    planner.stage(image, Path(context))
    planner.save()
    return BuildPlan(tuple(planner.stages))


class _Planner:
    def __init__(self, resolve: Resolver | None, use_index: bool) -> None:
        self.resolve = resolve
        self.use_index = use_index
        self.stages: list[StagePlan] = []
        self._seen: dict[tuple[str, str, str], int] = {}
        self._hashers: dict[tuple[Path, Path | None], ContextHasher] = {}

    def stage(self, image: Image, context: Path, dockerfile: Path | None = None) -> int:
        memo = (image.cache_key(), str(context.absolute()), str(dockerfile))
        if memo in self._seen:
            return self._seen[memo]
        base, items = _flatten(image, context, dockerfile)
        parent = base_key(base, context, self.resolve)
        first = parent
        planned: list[StepPlan] = []
        depends: list[int] = []
        for step, step_context, dockerfile in items:
            inputs: str | None = None
            read_from: Path | None = None
            from_stage: int | None = None
            if isinstance(step, st.Copy) and not _writes_file(step):
                if step.from_ is not None:
                    from_stage = self.stage(step.from_, step_context, dockerfile)
                    depends.append(from_stage)
                    inputs = self.stages[from_stage].key
                else:
                    read_from = step_context
                    hasher = self._hasher(step_context, dockerfile)
                    inputs = hasher.select(step.src, step.ignore).digest
            elif isinstance(step, st.Run) and step.binds:
                read_from = step_context
                inputs = bind_inputs(self._hasher(step_context, dockerfile), step.binds)
            key = step_key(parent, step, inputs)
            planned.append(StepPlan(step, key, parent, inputs, read_from, from_stage))
            parent = key
        index = len(self.stages)
        self.stages.append(
            StagePlan(index, image, base, first, tuple(planned), tuple(sorted(set(depends))))
        )
        self._seen[memo] = index
        return index

    def _hasher(self, context: Path, dockerfile: Path | None) -> ContextHasher:
        found = self._hashers.get((context, dockerfile))
        if found is None:
            found = ContextHasher(context, use_index=self.use_index, dockerfile=dockerfile)
            self._hashers[(context, dockerfile)] = found
        return found

    def save(self) -> None:
        for hasher in self._hashers.values():
            hasher.save()


def _flatten(
    image: Image, context: Path, dockerfile: Path | None = None
) -> tuple[Base, list[tuple[st.Step, Path, Path | None]]]:
    """The image's real base and its steps, each with the context its copies read and
    the Dockerfile they come from (whose ``<Dockerfile>.dockerignore`` applies).

    A Dockerfile base is imported: its steps read the Dockerfile's own context.
    """
    own = [(step, context, dockerfile) for step in image.steps]
    if not isinstance(image.base, Dockerfile):
        return image.base, own
    # lazy: a fully cached build does not load it
    from envkit.build.dockerfile import parse_dockerfile

    df_context = _resolve_path(image.base.context, context)
    df_path = _resolve_path(image.base.path, context)
    parsed = parse_dockerfile(df_path, df_context, dict(image.base.args), target=image.base.target)
    base, inner = _flatten(parsed, df_context, df_path)
    return base, [*inner, *own]


def _writes_file(step: st.Step) -> bool:
    """Whether ``step`` is a Dockerfile here-document (a ``WriteFile``), which reads
    nothing from the context. Such steps exist only once their module is loaded, so a
    build of spec steps does not import it."""
    extra = sys.modules.get("envkit.build.dockerfile_steps")
    return extra is not None and isinstance(step, extra.WriteFile)


def _resolve_path(path: str, base_dir: Path) -> Path:
    return Path(path) if os.path.isabs(path) else base_dir / path


def store_resolver(store: Store) -> Resolver:
    """A :data:`Resolver` looking references up in an envkit store (``Store``)."""

    def resolve(ref: str) -> str | None:
        try:
            return store.resolve(ref).digest
        except (ImageNotFoundError, ReferenceError_):
            return None

    return resolve
