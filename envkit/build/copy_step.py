"""The entries of a copy step's layer: from the build context, another stage, an archive
(``ADD x.tar.gz``) or inline content (a Dockerfile heredoc).

Docker's rules: a relative destination is below the working directory; one source file
lands at ``dst`` unless ``dst`` ends with ``/`` or is a directory of the image; a
directory's content lands below ``dst``. Files are 0:0 unless ``chown`` (a name, or
``uid[:gid]``: a uid alone means the same gid, as docker does); ``chmod`` sets the mode of
every file and directory copied. Parent directories the layer needs keep the metadata
they have in the image (``/tmp`` stays 1777); missing ones are 0755 and 0:0.
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from envkit.build.context import ContextHasher, Selection, planned_selection
from envkit.build.copy_layer import LayerEntry
from envkit.build.image_state import ImageState
from envkit.build.rootfs_view import RootView
from envkit.errors import BuildError
from envkit.records import replace
from envkit.runtime import image_config
from envkit.spec import steps as st

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.build.copy_layer import Kind

    # Annotations only: a build of spec steps does not load the Dockerfile steps.
    from envkit.build.dockerfile_steps import AddArchive, WriteFile

    Item = tuple[str, Kind, int, str, str, str]  # dest, kind, mode, host, target, digest


def destination(step: st.Copy, state: ImageState) -> str:
    """The absolute, cleaned destination of ``step`` in the image (no trailing slash)."""
    base = str(state.settings.get("WorkingDir") or "/")
    path = posixpath.normpath(posixpath.join(base, step.dst))
    return "/" if path in ("/", "//") else path.rstrip("/")


def owner(step: st.Copy, view: RootView) -> tuple[int, int]:
    """The (uid, gid) copied files get."""
    if step.chown is None:
        return 0, 0
    user, sep, group = step.chown.partition(":")
    if user.isdigit() and (not sep or group.isdigit()):
        return int(user), int(group) if sep else int(user)
    try:
        who = image_config.resolve_user(
            step.chown, view.read_text("/etc/passwd"), view.read_text("/etc/group")
        )
    except Exception as exc:  # SpecError from the user/group look-up
        raise BuildError(
            f"copy {step.src} -> {step.dst}: chown {step.chown!r}: {exc}",
            hint="use numeric ids, or create the user in an earlier step",
        ) from None
    return who.uid, who.gid


def from_context(step: st.Copy, context: Path, expected: str | None) -> Selection:
    """The context files ``step`` copies, as the build's plan read them.

    The plan's selection (whose content is in the context's snapshot) when this process
    planned it: files changed since are built as they were read. Otherwise the context
    is read again and must still hash to ``expected``.
    """
    if expected is not None:
        planned = planned_selection(context, expected)
        if planned is not None:
            return planned
    hasher = ContextHasher(context)
    selection = hasher.select(step.src, step.ignore)
    hasher.save()
    if expected is not None and selection.digest != expected:
        raise BuildError(
            f"copy {step.src}: the build context changed while the image was built",
            hint="build again once nothing writes to the build context",
        )
    return selection


def context_entries(
    step: st.Copy, state: ImageState, view: RootView, selection: Selection, context: Path
) -> list[LayerEntry]:
    """The layer entries of a copy from the build context."""
    uid, gid = owner(step, view)
    items: list[Item] = [
        (e.dest, e.kind, e.mode, selection.content_path(e, context), e.target, e.digest)
        for e in selection.entries
    ]
    return _place(step, state, view, items, uid, gid)


def stage_entries(
    step: st.Copy, state: ImageState, view: RootView, source: RootView
) -> list[LayerEntry]:
    """The layer entries of ``copy(from_=stage)``: ``step.src`` in the stage's files."""
    src = "/" + step.src.strip("/")
    found = list(source.walk(src))
    if not found:
        raise BuildError(
            f"copy {step.src}: no such file or directory in the source stage",
            hint="check the path in the stage the copy reads from",
        )
    uid, gid = owner(step, view)
    items: list[Item] = []
    for rel, entry in found:
        kind = _kind(entry.mode)
        if kind is None:
            continue  # devices, sockets and FIFOs are not copied
        dest = posixpath.basename(src) if rel == "." and kind != "dir" else rel
        target = os.readlink(entry.host) if kind == "symlink" else ""
        items.append((dest, kind, stat.S_IMODE(entry.mode), entry.host, target, ""))
    return _place(step, state, view, items, uid, gid)


def write_file_entries(step: WriteFile, state: ImageState, view: RootView) -> list[LayerEntry]:
    """The layer entries of a heredoc file (``COPY <<EOF /dst``)."""
    path = destination(step, state).lstrip("/")
    uid, gid = owner(step, view)
    mode = step.chmod if step.chmod is not None else 0o644
    entry = LayerEntry(path, "file", mode, uid, gid, data=step.content.encode())
    return [*_parents([entry], view), entry]


def archive_entries(
    step: AddArchive, state: ImageState, view: RootView, selection: Selection, context: Path
) -> list[LayerEntry]:
    """The layer entries of ``ADD archive /dst``: the archive's members below ``dst``."""
    files = [e for e in selection.entries if e.kind == "file"]
    if len(files) != 1:
        raise BuildError(
            f"ADD {step.src}: expected one archive file, found {len(files)}",
            hint="ADD one local archive per instruction",
        )
    dst = destination(step, state).lstrip("/")
    entries: list[LayerEntry] = []
    try:
        with tarfile.open(selection.content_path(files[0], context)) as tar:
            for member in tar:
                entry = _member_entry(tar, member, dst)
                if entry is not None:
                    entries.append(entry)
    except (OSError, tarfile.TarError) as exc:
        raise BuildError(
            f"ADD {step.src}: cannot read the archive: {exc}",
            hint="ADD extracts tar archives (plain, gzip, bzip2, xz)",
        ) from None
    if step.chown is not None or step.chmod is not None:
        uid, gid = owner(step, view)
        entries = [_override(e, step, uid, gid) for e in entries]
    return [*_parents(entries, view), *entries]


def _member_entry(tar: tarfile.TarFile, member: tarfile.TarInfo, dst: str) -> LayerEntry | None:
    parts = [p for p in member.name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None  # never outside the destination
    path = posixpath.join(dst, *parts) if dst else "/".join(parts)
    mode = member.mode & 0o7777
    if member.isdir():
        return LayerEntry(path, "dir", mode, member.uid, member.gid)
    if member.issym():
        return LayerEntry(path, "symlink", mode, member.uid, member.gid, target=member.linkname)
    if member.isfile():
        stream = tar.extractfile(member)
        data = stream.read() if stream is not None else b""
        return LayerEntry(path, "file", mode, member.uid, member.gid, data=data)
    return None  # hard links and devices: not supported by ADD here


def _override(entry: LayerEntry, step: st.Copy, uid: int, gid: int) -> LayerEntry:
    mode = step.chmod if step.chmod is not None else entry.mode
    if step.chown is None:
        uid, gid = entry.uid, entry.gid
    return replace(entry, uid=uid, gid=gid, mode=mode if entry.kind != "symlink" else 0o777)


def _place(
    step: st.Copy,
    state: ImageState,
    view: RootView,
    items: list[Item],
    uid: int,
    gid: int,
) -> list[LayerEntry]:
    dst = destination(step, state)
    single = len(items) == 1 and items[0][1] != "dir"
    existing = view.lookup(dst) if dst != "/" else None
    names_dir = step.dst.endswith(("/", "/.")) or step.dst == "."
    into_dir = names_dir or not single or (existing is not None and existing.is_dir)
    entries: list[LayerEntry] = []
    for dest, kind, mode, host, target, digest in items:
        whole = (single and not into_dir) or dest == "."
        path = (dst if whole else posixpath.join(dst, dest)).lstrip("/")
        if not path:
            continue  # the root directory itself keeps its metadata
        if step.chmod is not None and kind != "symlink":
            mode = step.chmod
        if kind == "dir" and dest == "." and existing is not None and existing.is_dir:
            entries.append(_kept(path, existing.mode, existing.uid, existing.gid))
            continue
        entries.append(
            LayerEntry(path, kind, mode, uid, gid, host=host, target=target, digest=digest)
        )
    return [*_parents(entries, view), *entries]


def _kept(path: str, mode: int, uid: int, gid: int) -> LayerEntry:
    return LayerEntry(path, "dir", stat.S_IMODE(mode), uid, gid)


def _parents(entries: Iterable[LayerEntry], view: RootView) -> Iterator[LayerEntry]:
    """Directory entries for every missing parent of ``entries``."""
    have = {e.path for e in entries}
    wanted: set[str] = set()
    for path in have:
        parent = posixpath.dirname(path)
        while parent and parent not in have and parent not in wanted:
            wanted.add(parent)
            parent = posixpath.dirname(parent)
    for path in sorted(wanted):
        found = view.lookup("/" + path)
        if found is not None and found.is_dir:
            yield _kept(path, found.mode, found.uid, found.gid)
        else:
            yield LayerEntry(path, "dir", 0o755)


def _kind(mode: int) -> Kind | None:
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISREG(mode):
        return "file"
    return None
