"""``Image``: an immutable image recipe, a base plus an ordered list of steps.

Every builder method returns a new Image, so one Image can be the base of many::

    base = Image.from_("python:3.11-slim").workdir("/app")
    web = base.copy(".", ".").cmd(["python", "app.py"])
    worker = base.copy(".", ".").cmd(["python", "worker.py"])
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from envkit.errors import ReferenceError_, SpecError
from envkit.oci.reference import parse as parse_reference
from envkit.records import Value
from envkit.spec import steps as st
from envkit.spec import validate
from envkit.spec.bases import Archive, Base, Debian, Dockerfile, FromRef, Scratch, base_canonical
from envkit.spec.canonical import SpecObject, versioned
from envkit.spec.engine import engine
from envkit.spec.healthcheck import Healthcheck
from envkit.spec.secret import Secret, secret_list

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import Any, Literal, Never, Self

    from envkit.build.executor import BuildResult
    from envkit.build.progress import Progress

SHELL = ("/bin/sh", "-c")
DEBIAN_VARIANTS = ("minbase", "buildd", "essential", "apt", "required", "important", "standard")
PROTOCOLS = ("tcp", "udp", "sctp")

# Patterns, compiled by re on first use (most images use none of them).
_SUITE_RE = r"^[a-z][a-z0-9-]*$"
_PACKAGE_RE = r"^[a-z0-9][a-z0-9+.-]+(?:[:][a-z0-9-]+)?(?:=[A-Za-z0-9.+~:-]+)?$"
_CACHE_ID_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class Image(Value, SpecObject):
    """An image recipe. Build one with a constructor (:meth:`from_`, :meth:`scratch`,
    :meth:`debian`, :meth:`load`, :meth:`from_dockerfile`) and the step methods."""

    base: Base
    steps: tuple[st.Step, ...] = ()

    # -- constructors ------------------------------------------------------------------

    @classmethod
    def from_(cls, ref: str) -> Self:
        """Start from an image by reference (``"python:3.11-slim"``, ``"name@sha256:..."``).

        The reference is normalised as docker does (``busybox`` is
        ``docker.io/library/busybox:latest``).
        """
        text = validate.string("Image.from_(ref)", ref)
        try:
            parsed = parse_reference(text)
        except ReferenceError_ as exc:
            raise SpecError("Image.from_(ref)", exc.message, hint=exc.hint) from None
        return cls(FromRef(str(parsed)))

    @classmethod
    def scratch(cls) -> Self:
        """Start from an empty root file system."""
        return cls(Scratch())

    @classmethod
    def debian(
        cls,
        suite: str = "bookworm",
        packages: Sequence[str] = (),
        variant: str = "minbase",
        mirror: str | None = None,
        **unknown: Never,
    ) -> Self:
        """Bootstrap a Debian ``suite`` with ``packages`` installed.

        ``variant`` is the bootstrap variant (``minbase`` by default); ``mirror`` an
        ``http(s)://`` Debian mirror (default: the configured one). Package order does
        not matter: the list is sorted and de-duplicated.
        """
        field = "Image.debian"
        validate.reject_unknown(field, unknown, Image.debian)
        if not isinstance(suite, str) or not re.match(_SUITE_RE, suite):
            raise SpecError(f"{field}(suite)", "invalid suite", value=suite, hint='e.g. "bookworm"')
        names = validate.strings(f"{field}(packages)", packages)
        for pkg in names:
            if not re.match(_PACKAGE_RE, pkg):
                raise SpecError(
                    f"{field}(packages)",
                    "invalid Debian package name",
                    value=pkg,
                    hint='lowercase name, optionally "=version": "postgresql", "curl=7.88.1-10"',
                )
        variant = validate.choice(f"{field}(variant)", variant, DEBIAN_VARIANTS)
        if mirror is not None:
            mirror = validate.string(f"{field}(mirror)", mirror)
            parts = urlsplit(mirror)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise SpecError(
                    f"{field}(mirror)",
                    "expected an http:// or https:// URL",
                    value=mirror,
                    hint='e.g. "http://deb.debian.org/debian"',
                )
        return cls(Debian(suite, tuple(sorted(set(names))), variant, mirror))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Self:
        """Start from an image archive (OCI archive or ``docker save`` output) on disk."""
        return cls(Archive(validate.path("Image.load(path)", path)))

    @classmethod
    def from_dockerfile(
        cls,
        path: str | os.PathLike[str] = "Dockerfile",
        context: str | os.PathLike[str] = ".",
        *,
        args: Mapping[str, str | int | float] | None = None,
        target: str | None = None,
        **unknown: Never,
    ) -> Self:
        """Build from a Dockerfile with ``context`` as build context, as ``docker build``
        does: ``args`` are its ``--build-arg`` values, ``target`` the stage to build
        (``--target``; default: the last stage).

        Recorded now; the Dockerfile is read when the image is built.
        """
        validate.reject_unknown("Image.from_dockerfile", unknown, Image.from_dockerfile)
        return cls(
            Dockerfile(
                validate.path("Image.from_dockerfile(path)", path),
                validate.path("Image.from_dockerfile(context)", context),
                validate.str_mapping(
                    "Image.from_dockerfile(args)", args or {}, key_check=validate.env_name
                ),
                None
                if target is None
                else validate.string("Image.from_dockerfile(target)", target),
            )
        )

    # -- steps -------------------------------------------------------------------------

    def run(
        self,
        cmd: str | Sequence[str],
        *,
        secrets: Sequence[Secret] = (),
        caches: Mapping[str, str] | None = None,
        network: Literal["host", "none"] | None = None,
        env: Mapping[str, str] | None = None,
        binds: Mapping[str, str | os.PathLike[str]] | None = None,
        **unknown: Never,
    ) -> Self:
        """Run a command: a string runs through ``/bin/sh -c``, a list is run as is.

        ``secrets`` are mounted at /run/secrets/<name> for this step only and never reach
        the layer. ``caches`` maps a target path to a cache id: a directory kept between
        builds (``{"/root/.cache/pip": "pip"}``), not part of the layer. ``network``:
        ``None`` (default build network), ``"host"`` or ``"none"``. ``env`` applies to
        this step only. ``binds`` maps a target path (relative: below the working
        directory) to a build context path, shown to this step only and not part of the
        layer (a Dockerfile's ``RUN --mount=type=bind``): the step runs again when those
        files change, as a copy would. Writes to them are discarded.
        """
        validate.reject_unknown("Image.run", unknown, Image.run)
        argv = _command("Image.run(cmd)", cmd)
        found = secret_list("Image.run(secrets)", secrets)
        cache_pairs = validate.str_mapping(
            "Image.run(caches)", caches or {}, key_check=validate.absolute_path
        )
        for target, cache_id in cache_pairs:
            if not re.match(_CACHE_ID_RE, cache_id):
                raise SpecError(
                    f"Image.run(caches)[{target!r}]",
                    "invalid cache id",
                    value=cache_id,
                    hint="use letters, digits, '_', '.' and '-'",
                )
        if network is not None:
            validate.choice("Image.run(network)", network, ("host", "none"))
        env_pairs = validate.str_mapping("Image.run(env)", env or {}, key_check=validate.env_name)
        bind_pairs = tuple(
            sorted(
                (
                    validate.string("Image.run(binds)", target),
                    validate.path("Image.run(binds)", src),
                )
                for target, src in (binds or {}).items()
            )
        )
        return self._then(st.Run(argv, found, cache_pairs, network, env_pairs, bind_pairs))

    def copy(
        self,
        src: str | os.PathLike[str],
        dst: str,
        *,
        from_: Image | None = None,
        ignore: Sequence[str] = (),
        chown: str | None = None,
        chmod: str | int | None = None,
        **unknown: Never,
    ) -> Self:
        """Copy ``src`` to ``dst`` (relative ``dst``: below the working directory).

        ``src`` is in the build context (relative to the stack file's directory), or in
        ``from_``'s file system for a multi-stage copy. ``ignore`` adds patterns (in the
        ``.dockerignore`` syntax, order kept) to the context's ignore files. ``chown``:
        ``"user[:group]"``; ``chmod``: ``0o755`` or ``"755"``.
        """
        validate.reject_unknown("Image.copy", unknown, Image.copy)
        source = validate.path("Image.copy(src)", src)
        target = validate.string("Image.copy(dst)", dst)
        if from_ is not None and not isinstance(from_, Image):
            raise SpecError(
                "Image.copy(from_)", f"expected an Image, not {type(from_).__name__}", value=from_
            )
        patterns = validate.strings("Image.copy(ignore)", ignore)
        owner = None if chown is None else validate.user("Image.copy(chown)", chown)
        return self._then(
            st.Copy(source, target, from_, patterns, owner, _mode("Image.copy(chmod)", chmod))
        )

    def env(self, values: Mapping[str, str] | None = None, /, **kw: str) -> Self:
        """Set environment variables: ``.env(PORT="5000")`` or ``.env({"PORT": "5000"})``."""
        merged = {**(values or {}), **kw}
        if not merged:
            raise SpecError("Image.env", "no variables given", hint='e.g. .env(PORT="5000")')
        return self._then(
            st.Env(validate.str_mapping("Image.env", merged, key_check=validate.env_name))
        )

    def workdir(self, path: str) -> Self:
        """Set the working directory of later steps and of containers (created if needed)."""
        return self._then(st.Workdir(validate.string("Image.workdir(path)", path)))

    def user(self, user: str | int) -> Self:
        """Run later steps and containers as ``"uid[:gid]"`` or ``"name[:group]"``."""
        return self._then(st.User(validate.user("Image.user", user)))

    def expose(self, port: int | str, proto: str = "tcp") -> Self:
        """Declare that containers listen on ``port`` (``5000``, or ``"5000/udp"``)."""
        if isinstance(port, str) and "/" in port:
            port, proto = port.split("/", 1)
        number = validate.port("Image.expose(port)", port)
        return self._then(
            st.Expose(number, validate.choice("Image.expose(proto)", proto, PROTOCOLS))
        )

    def entrypoint(self, argv: Sequence[str] | str) -> Self:
        """Set the entrypoint: a list (exec form) or a string (run by ``/bin/sh -c``).

        An empty list clears the base image's entrypoint.
        """
        return self._then(st.Entrypoint(_command("Image.entrypoint", argv, allow_empty=True)))

    def cmd(self, argv: Sequence[str] | str) -> Self:
        """Set the default command: a list (exec form) or a string (run by ``/bin/sh -c``)."""
        return self._then(st.Cmd(_command("Image.cmd", argv, allow_empty=True)))

    def label(self, values: Mapping[str, str] | None = None, /, **kw: str) -> Self:
        """Add labels: ``.label(maintainer="team@example.org")`` or a mapping."""
        merged = {**(values or {}), **kw}
        if not merged:
            raise SpecError("Image.label", "no labels given", hint='e.g. .label(team="web")')
        return self._then(st.Label(validate.str_mapping("Image.label", merged)))

    def healthcheck(self, check: Healthcheck) -> Self:
        """Set the health check containers of this image run."""
        if not isinstance(check, Healthcheck):
            raise SpecError(
                "Image.healthcheck",
                f"expected a Healthcheck, not {type(check).__name__}",
                value=check,
                hint='Healthcheck(["CMD", "true"])',
            )
        return self._then(st.SetHealthcheck(check))

    # -- building ----------------------------------------------------------------------

    def build(
        self,
        tag: str | None = None,
        *,
        context: str | os.PathLike[str] = ".",
        no_cache: bool = False,
        progress: Progress | None = None,
        **unknown: Never,
    ) -> BuildResult:
        """Build this image into the local store; tagged ``tag``, else kept by digest.

        ``context`` is the directory copies read (relative sources, ``.envkitignore``).
        Returns the :class:`~envkit.build.executor.BuildResult` (``.image_id``,
        ``.digest``); ``envkit.run(result.image_id)`` runs it. Raises
        :class:`~envkit.errors.BuildError` when a step fails.
        """
        validate.reject_unknown("Image.build", unknown, Image.build)
        return engine().build(self, context, tag=tag, no_cache=no_cache, progress=progress)

    # -- identity ----------------------------------------------------------------------

    def _then(self, step: st.Step) -> Self:
        return type(self)(self.base, (*self.steps, step))

    @property
    def secrets(self) -> tuple[Secret, ...]:
        """The secrets the build of this image (and its ``from_`` stages) needs, by name."""
        found: dict[str, Secret] = {}
        for step in self.steps:
            if isinstance(step, st.Run):
                found.update((s.name, s) for s in step.secrets)
            elif isinstance(step, st.Copy) and step.from_ is not None:
                found.update((s.name, s) for s in step.from_.secrets)
        return tuple(found[n] for n in sorted(found))

    def canonical(self) -> dict[str, Any]:
        """Base and steps, in order."""
        return versioned(
            "image",
            {"base": base_canonical(self.base), "steps": [s.canonical() for s in self.steps]},
        )

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.base.params().items())
        return f"<Image {self.base.kind}({params}) +{len(self.steps)} steps>"


def _command(field: str, cmd: object, *, allow_empty: bool = False) -> tuple[str, ...]:
    if isinstance(cmd, str):
        return (*SHELL, validate.string(field, cmd))
    return validate.argv(field, cmd, allow_empty=allow_empty)


def _mode(field: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value.removeprefix("0o")
        if not text or any(c not in "01234567" for c in text):
            raise SpecError(field, "expected an octal mode", value=value, hint='e.g. "755"')
        value = int(text, 8)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o7777:
        raise SpecError(field, "expected a mode 0..0o7777", value=value, hint="e.g. 0o755")
    return value
