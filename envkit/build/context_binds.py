"""A run step's binds of the build context (``RUN --mount=type=bind``,
``Image.run(binds=...)``): each source's files, selected as a copy selects them (the
ignore files apply), written to a private directory of the step and bind-mounted at the
target. The step sees a copy: what it writes there is discarded with the directory, and
nothing of it reaches the layer.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from collections.abc import Sequence
from pathlib import Path

from envkit.build.context import ContextHasher, Entry, Selection
from envkit.build.keys import bind_key
from envkit.errors import BuildError
from envkit.runtime.config import BindMount


def context_binds(
    binds: Sequence[tuple[str, str]],
    context: Path,
    expected: str | None,
    into: Path,
    cwd: str,
) -> list[BindMount]:
    """Bind mounts showing each ``(target, source)`` of ``binds``; a relative target is
    below ``cwd``. The files are those the plan hashed (``expected``): a context that
    changed since is refused, as a copy refuses it."""
    hasher = ContextHasher(context)
    selections = [hasher.select(source) for _, source in binds]
    hasher.save()
    found = bind_key([(target, s.digest) for (target, _), s in zip(binds, selections, strict=True)])
    if expected is not None and found != expected:
        raise BuildError(
            "run: the build context changed while the image was built",
            hint="build again once nothing writes to the build context",
        )
    mounts = []
    for index, ((target, _), selection) in enumerate(zip(binds, selections, strict=True)):
        shown = _write(selection, context, into / str(index))
        mounts.append(BindMount(str(shown), posixpath.normpath(posixpath.join(cwd, target))))
    _give_to_container_root(into)
    return mounts


def _give_to_container_root(root: Path) -> None:
    """As root, the files become container root's (a subordinate id), so the step may
    write to them as BuildKit lets it; rootless, this user is container root already."""
    if os.geteuid() != 0:
        return
    from envkit.host import idmap  # lazy: as root only

    maps = idmap.plan()
    uid, gid = maps.to_host_uid(0), maps.to_host_gid(0)
    for top, dirs, files in os.walk(root):
        os.lchown(top, uid, gid)
        for name in (*dirs, *files):
            os.lchown(os.path.join(top, name), uid, gid)


def _write(selection: Selection, context: Path, root: Path) -> Path:
    """The selection's files below ``root``: the file itself for a one-file source, else
    the directory the source names."""
    entries = selection.entries
    root.mkdir(parents=True)
    if len(entries) == 1 and entries[0].kind == "file" and entries[0].dest != ".":
        path = root / entries[0].dest
        _file(selection, context, entries[0], path)
        return path
    top = root / "src"
    top.mkdir()
    real_top = os.path.realpath(top)
    for entry in entries:
        path = top if entry.dest == "." else top / entry.dest
        parent = os.path.realpath(path.parent)
        if path != top and parent != real_top and not parent.startswith(real_top + os.sep):
            # a dest below a symlink another match wrote (a glob's "x" link beside a
            # directory holding "x/f"): never follow it out of the step's directory
            raise BuildError(
                f"run: the bind of {selection.src!r} has {entry.dest!r} below a symlink",
                hint="bind a directory that holds no such overlap",
            )
        if entry.kind == "dir":
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, entry.mode)
        elif entry.kind == "symlink":
            path.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(entry.target, path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            _file(selection, context, entry, path)
    return top


def _file(selection: Selection, context: Path, entry: Entry, path: Path) -> None:
    # a copy, never a link: a step that writes to it must not change the context's
    # snapshot blob (shutil clones where the file system can, else copies)
    shutil.copyfile(selection.content_path(entry, context), path, follow_symlinks=False)
    os.chmod(path, entry.mode)
