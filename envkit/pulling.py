"""Docker's pull policies for ``run`` and ``up``: ``--pull=missing|always|never``.

* ``missing`` (the default): an image that is not in the store is pulled from its
  registry first, as ``docker run`` does (``Unable to find image 'busybox:1' locally``,
  then the pull's own lines, as ``envkit pull`` prints them);
* ``always``: the name is pulled before every run (a pull of an image that is up to
  date costs one HEAD request);
* ``never``: only the store is used; a missing image is an error naming ``envkit pull``.

Only names are pulled: an image id, a digest or an id prefix is looked up in the store
alone. The store is always asked first, so this module (and the registry client, and
requests) is imported only when an image is missing or ``always`` is asked for: the
start-up path of ``envkit run`` of a stored image stays as it was.
"""

from __future__ import annotations

from envkit.errors import ImageNotFoundError, ReferenceError_, RegistryError, SpecError
from envkit.oci.reference import parse

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import TextIO

    from envkit.registry.pull import PulledImage

MISSING = "missing"
ALWAYS = "always"
NEVER = "never"
POLICIES = (MISSING, ALWAYS, NEVER)
_HEX = frozenset("0123456789abcdef")


def check(policy: object, field: str = "pull") -> str:
    """``policy`` when it is one of :data:`POLICIES`, else a :class:`SpecError`."""
    if policy not in POLICIES:
        raise SpecError(
            field, "expected missing, always or never", value=policy, hint="as docker's --pull"
        )
    return str(policy)


def remote(ref: str) -> str | None:
    """The normalised reference to pull for ``ref`` as ``run`` and ``up`` name an image,
    or ``None`` when it names no registry image (an id, a digest, not a reference)."""
    if ref.startswith("sha256:") or (len(ref) == 64 and set(ref) <= _HEX):
        return None
    try:
        return str(parse(ref))
    except ReferenceError_:
        return None


def familiar(ref: str) -> str:
    """``ref`` as docker prints it (``busybox:latest``, ``127.0.0.1:5000/app:1``)."""
    try:
        return parse(ref).familiar
    except ReferenceError_:
        return ref


def not_present(
    ref: str, cause: ImageNotFoundError, option: str = "--pull=never"
) -> ImageNotFoundError:
    """The error of a missing image that the policy ``never`` does not pull."""
    hint = f"`envkit pull {familiar(ref)}` first, or drop {option}"
    if remote(ref) is None:
        hint = cause.hint or hint
    return ImageNotFoundError(f"{cause.message} ({option})", hint=hint)


def pull(ref: str, *, missing: bool, stream: TextIO | None = None) -> PulledImage:
    """Pull ``ref`` (a name :func:`remote` accepts) into the default store, with docker's
    lines on ``stream`` (``None``: silently): ``Unable to find image ... locally`` first
    when ``missing``, then the pull's progress and its ``Status:`` line.

    A failure is one error, exit code 2: :class:`ImageNotFoundError` when the image was
    ``missing`` (the store does not have it and the registry did not give it),
    :class:`RegistryError` otherwise (``always``)."""
    target = remote(ref)
    if target is None:
        raise ImageNotFoundError(f"{ref!r} names no image of a registry: nothing to pull")
    # lazy for start-up: requests and the registry client only when pulling (see above)
    from envkit.registry.progress import Progress
    from envkit.registry.pull import pull as pull_ref

    progress = Progress.silent() if stream is None else Progress(stream)
    shown = familiar(ref)
    if missing:
        progress.message(f"Unable to find image '{shown}' locally")
    try:
        image = pull_ref(target, progress=progress)
    except RegistryError as exc:
        if missing:
            raise ImageNotFoundError(
                f"no image {ref!r} in the store, and pulling it failed: {exc.message}",
                hint=exc.hint or f"check the name; `envkit pull {ref}` tries again",
            ) from exc
        raise RegistryError(
            f"cannot pull {ref!r} (--pull=always): {exc.message}", hint=exc.hint
        ) from exc
    progress.message(f"Status: {status(image)}")
    return image


def status(image: PulledImage) -> str:
    """Docker's summary of a pull: ``Downloaded newer image for busybox:1`` or
    ``Image is up to date for busybox:1``."""
    verb = "Downloaded newer image" if image.downloaded else "Image is up to date"
    return f"{verb} for {image.ref.familiar}"
