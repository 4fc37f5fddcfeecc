"""The images of an exported stack, each named by digest.

An exported stack runs on another engine, which pulls every image from a registry: so
each service's image must be in one, and is named by the digest of its manifest (or
index), never by a tag that can move.

* An image the stack builds (steps, a Dockerfile, Debian, an archive, scratch) is built
  as ``envkit up`` builds it (``<stack>-<service>:latest``, the ``envkit.lock`` beside
  the stack file) and, with ``push="REGISTRY[/PREFIX]"``, pushed to
  ``REGISTRY/PREFIX/<stack>-<service>:latest``; the export names it
  ``REGISTRY/PREFIX/<stack>-<service>@sha256:...``. Without ``push`` it is in no
  registry: an error names every such service and the flag to add.
* A plain reference (``postgres:15``) names a registry image: pinned as given
  (``name@sha256:...``), or by the digest the store recorded when it was pulled (the
  image ``envkit up`` runs). A reference the store does not hold is an error naming
  ``envkit pull``.

:class:`ImageFacts` keeps what the Kubernetes export reads from a pinned image's config
(exposed ports, the numeric ids of a user name from its ``/etc/passwd``).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from envkit.errors import EnvkitError, ImageNotFoundError, ReferenceError_, StoreError
from envkit.oci.reference import parse
from envkit.records import Record, field
from envkit.spec.bases import FromRef
from envkit.spec.image import Image
from envkit.spec.stack import Stack

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.store.store import Store


class ImageFacts(Record):
    """A pinned image: its reference by digest and what its config says.

    ``config`` is the image config's ``config`` object (empty when the image is not in
    the store); ``layers`` the image's extracted lower dirs, filled on first use.
    """

    ref: str
    config: Mapping[str, Any] = field(default_factory=dict)
    store_digest: str | None = None
    _layers: tuple[str, ...] | None = None

    @property
    def exposed_ports(self) -> list[tuple[int, str]]:
        """``EXPOSE`` of the image as (port, protocol), sorted."""
        found = set()
        for key in self.config.get("ExposedPorts") or {}:
            port, _, proto = str(key).partition("/")
            if port.isdigit():
                found.add((int(port), proto or "tcp"))
        return sorted(found)

    def user_ids(self, store: Store | None, user: str) -> tuple[int, int | None] | None:
        """``user[:group]`` as numeric ids, names read from the image's ``/etc/passwd``
        and ``/etc/group``; ``None`` when a name cannot be resolved (image not in the
        store, or no such entry). The group is ``None`` when ``user`` names none and
        passwd gives no primary group."""
        name, _, group = user.partition(":")
        if name.isdigit() and (not group or group.isdigit()):
            return int(name), int(group) if group else None
        if store is None or self.store_digest is None:
            return None
        from envkit.runtime import image_config  # lazy: only for a user given by name

        layers = self._image_layers(store)
        try:
            who = image_config.resolve_user(
                user,
                image_config.read_image_file(layers, "/etc/passwd"),
                image_config.read_image_file(layers, "/etc/group"),
            )
        except EnvkitError:
            return None
        return who.uid, who.gid

    def _image_layers(self, store: Store) -> tuple[str, ...]:
        if self._layers is None:
            from envkit.store import snapshots  # lazy: only to read /etc/passwd (downward)

            assert self.store_digest is not None
            _, manifest = store.image_manifest(store.resolve(self.store_digest))
            config = store.config(manifest)
            snapshot = snapshots.prepare(
                store, [d.digest for d in manifest.layers], config.diff_ids
            )
            self._layers = tuple(snapshot.layers)
        return self._layers


def is_built(image: Image) -> bool:
    """Whether the stack builds ``image`` (anything but a plain registry reference)."""
    return bool(image.steps) or not isinstance(image.base, FromRef)


def push_prefix(push: str) -> str:
    """``push`` checked as ``REGISTRY[/PREFIX]`` (``registry.example.org/team``,
    ``127.0.0.1:5000``), normalised as docker names it, without a trailing ``/``."""
    text = push.strip().rstrip("/")
    try:
        ref = parse(f"{text}/envkit-check")
    except ReferenceError_ as exc:
        raise EnvkitError(
            f"--push {push!r}: not a registry with an optional path: {exc.message}",
            hint="e.g. --push registry.example.org/team or --push 127.0.0.1:5000",
        ) from None
    return ref.name.removesuffix("/envkit-check")


def pin_images(
    stack: Stack,
    *,
    push: str | None = None,
    extra: Sequence[str] = (),
    store: Store | None = None,
    progress: bool = True,
) -> tuple[dict[str, ImageFacts], dict[str, ImageFacts]]:
    """Every service's image by digest (service -> facts), and each of ``extra``
    (references the export adds, such as the image an init container waits with).

    Builds and pushes what the stack builds when ``push`` is given; otherwise raises one
    :class:`EnvkitError` naming every service whose image is in no registry, and every
    reference that was never pulled.
    """
    from envkit.store.store import Store  # lazy for start-up (downward)

    store = store or Store.default()
    built = [s.name for s in stack.services if is_built(s.image)]
    if built and push is None:
        raise EnvkitError(
            f"the images of {_names(built)} are built by the stack and are in no registry, "
            "so another engine cannot pull them",
            hint="add --push REGISTRY (Stack.export(push=...)), e.g. --push "
            "registry.example.org/team: they are built, pushed and named by digest",
        )
    prefix = push_prefix(push) if push is not None else None
    facts: dict[str, ImageFacts] = {}
    unpulled: list[str] = []
    extras: dict[str, ImageFacts] = {}
    for service in stack.services:
        if is_built(service.image):
            continue
        assert isinstance(service.image.base, FromRef)
        found = _pinned_ref(store, service.image.base.ref)
        if found is None:
            unpulled.append(f"{service.name} ({parse(service.image.base.ref).familiar})")
        else:
            facts[service.name] = found
    for ref in extra:
        found = _pinned_ref(store, str(parse(ref)))
        if found is None:
            unpulled.append(ref)
        else:
            extras[ref] = found
    if unpulled:
        first = unpulled[0].split(" (")[-1].rstrip(")")
        raise EnvkitError(
            f"no digest is known for {', '.join(unpulled)}: not in the store, so not pulled",
            hint=f"envkit pull {first} (each of them) records the digest the registry serves; "
            "or name the image by digest (NAME@sha256:...)",
        )
    if prefix is not None:
        facts.update(_build_and_push(stack, built, prefix, store, progress))
    return facts, extras


def _pinned_ref(store: Store, ref: str) -> ImageFacts | None:
    """The digest-pinned form of the registry reference ``ref`` and its config, or
    ``None`` when neither the reference nor the store gives a digest."""
    parsed = parse(ref)
    desc = None
    try:
        desc = store.resolve(str(parsed))
    except (ImageNotFoundError, ReferenceError_):
        if parsed.digest is None:
            return None
    digest = parsed.digest or (desc.digest if desc is not None else None)
    assert digest is not None
    facts = ImageFacts(f"{parsed.name}@{digest}")
    if desc is not None:
        try:
            _, manifest = store.image_manifest(desc)
            facts.config = store.config(manifest).config
            facts.store_digest = desc.digest
        except StoreError:
            pass
    return facts


def _build_and_push(
    stack: Stack, names: Sequence[str], prefix: str, store: Store, progress: bool
) -> dict[str, ImageFacts]:
    # lazy: the build and push layers only with push= (downward)
    from envkit.build.executor import Builder
    from envkit.build.lockfile import LOCK_NAME, LockFile
    from envkit.build.progress import for_stream
    from envkit.registry import progress as registry_progress
    from envkit.registry.push import push

    context = stack.base_dir or Path.cwd()
    lock = LockFile.load(stack.base_dir / LOCK_NAME) if stack.base_dir is not None else None
    build_progress = for_stream(mode="auto" if progress else "quiet")
    push_progress = (
        registry_progress.Progress(sys.stderr) if progress else registry_progress.Progress.silent()
    )
    builder = Builder(store, progress=build_progress, lock=lock)
    out: dict[str, ImageFacts] = {}
    try:
        for name in names:
            tag = f"{stack.name}-{name}:latest"
            result = builder.build(stack[name].image, context, tag=tag)
            target = f"{prefix}/{stack.name}-{name.lower()}:latest"
            pushed = push(tag, target, store, progress=push_progress)
            facts = ImageFacts(f"{pushed.ref.name}@{pushed.digest}")
            _, manifest = store.image_manifest(result.manifest)
            facts.config = store.config(manifest).config
            facts.store_digest = result.digest
            out[name] = facts
    finally:
        build_progress.close()
    return out


def _names(names: Sequence[str]) -> str:
    quoted = [repr(n) for n in names]
    if len(quoted) == 1:
        return f"service {quoted[0]}"
    return "services " + ", ".join(quoted[:-1]) + " and " + quoted[-1]
