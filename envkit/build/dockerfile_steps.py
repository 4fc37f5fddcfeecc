"""Steps a Dockerfile needs that the spec's Image methods cannot make yet.

Both subclass :class:`envkit.spec.steps.Copy`, so an :class:`~envkit.spec.image.Image`
holding them type-checks; an executor must test for them before ``Copy``. Their
canonical forms carry their own ``op`` so that they never share a cache key with a plain
copy. They belong in the spec (``Image.add(..., extract=True)``, ``Image.write(...)``)
once it grows those methods.
"""

from __future__ import annotations

from typing import Any

from envkit.records import Value
from envkit.spec.canonical import pairs_to_dict
from envkit.spec.steps import Copy, Label, Pairs


class AddArchive(Copy):
    """``ADD archive.tar.gz /dst``: the local tar archive ``src`` extracted below ``dst``."""

    def canonical(self) -> dict[str, Any]:
        return {**super().canonical(), "op": "add-archive"}


class WriteFile(Copy):
    """``COPY <<EOF /dst``: a file at ``dst`` holding ``content`` (``src`` is unused)."""

    content: str = ""

    def canonical(self) -> dict[str, Any]:
        return {
            "op": "write-file",
            "dst": self.dst,
            "content": self.content,
            "chown": self.chown,
            "chmod": None if self.chmod is None else f"{self.chmod:04o}",
        }


# -- config steps a Dockerfile has and the spec has not ---------------------------------
#
# Subclasses of Label so that an Image holding them type-checks; ``values`` is unused
# (empty) except where said. The executor tests for them before Label.


class SetVolumes(Label):
    """``VOLUME /data``: mount points recorded in the config's ``Volumes``."""

    paths: tuple[str, ...] = ()

    def canonical(self) -> dict[str, Any]:
        return {"op": "volume", "paths": list(self.paths)}


class SetStopSignal(Label):
    """``STOPSIGNAL SIGQUIT``: the config's ``StopSignal``."""

    signal: str = ""

    def canonical(self) -> dict[str, Any]:
        return {"op": "stopsignal", "signal": self.signal}


class SetAuthor(Label):
    """``MAINTAINER name``: the config's top-level ``author``."""

    author: str = ""

    def canonical(self) -> dict[str, Any]:
        return {"op": "maintainer", "author": self.author}


class Deferred(Value):
    """Words of a Dockerfile instruction that name variables the Dockerfile does not set.

    BuildKit expands them at build time against the base image's config ``Env``; so does
    envkit: ``scope`` holds the build args in force at the instruction (they override the
    config's ``Env``), ``words`` the raw words, ``escape`` the Dockerfile's escape token.
    """

    instruction: str
    words: tuple[str, ...]
    scope: Pairs = ()
    escape: str = "\\"

    def canonical(self) -> dict[str, Any]:
        return {
            "instruction": self.instruction,
            "words": list(self.words),
            "scope": pairs_to_dict(self.scope),
            "escape": self.escape,
        }


class ExpandConfig(Label):
    """A config instruction (ENV, LABEL, WORKDIR, USER, EXPOSE, VOLUME, STOPSIGNAL) whose
    words are expanded when the build reaches it (see :class:`Deferred`)."""

    deferred: Deferred = Deferred("", ())

    def canonical(self) -> dict[str, Any]:
        return {"op": "expand-config", **self.deferred.canonical()}


class ExpandCopy(Copy):
    """A COPY/ADD whose ``dst``, ``chown`` or ``chmod`` name base-image variables:
    ``deferred.words`` are ``(dst, chown, chmod)`` (empty string: not given)."""

    deferred: Deferred = Deferred("", ())
    extract: bool = False

    def canonical(self) -> dict[str, Any]:
        body = {**super().canonical(), "op": "add-archive" if self.extract else "copy"}
        return {**body, "expand": self.deferred.canonical()}


class ExpandWriteFile(WriteFile):
    """``COPY <<EOF`` whose destination, owner, mode or content name base-image
    variables: ``deferred.words`` are ``(dst, chown, chmod, content)``."""

    deferred: Deferred = Deferred("", ())

    def canonical(self) -> dict[str, Any]:
        return {**super().canonical(), "expand": self.deferred.canonical()}
