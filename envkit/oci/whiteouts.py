"""Whiteout names of OCI layers and the overlayfs markers they are made from.

In a layer tar, ``dir/.wh.name`` deletes ``dir/name`` from the layers below and
``dir/.wh..wh..opq`` hides everything the layers below have in ``dir``. In an overlayfs
upper directory the same facts are a 0/0 character device (or, with the kernel's
"xwhiteouts", a file carrying an ``overlay.whiteout`` xattr) and an ``overlay.opaque``
xattr set to ``y`` on a directory, in the ``trusted.`` namespace or, on ``userxattr``
mounts, the ``user.`` one.
"""

from __future__ import annotations

WH_PREFIX = ".wh."
#: Marks its directory opaque: lower layers' content of the directory is hidden.
WH_OPAQUE = ".wh..wh..opq"
#: Names starting with this are aufs bookkeeping (``.wh..wh.plnk``...), never content.
WH_META_PREFIX = ".wh..wh."

_OVERLAY_NAMESPACES = ("trusted.overlay.", "user.overlay.")


def is_overlay_xattr(key: str) -> bool:
    """Whether ``key`` is overlayfs' own bookkeeping, which never belongs in a layer."""
    return key.startswith(_OVERLAY_NAMESPACES)


def overlay_xattr(xattrs: dict[str, bytes], name: str) -> bytes | None:
    """The value of overlay xattr ``name`` (``"opaque"``...) in either namespace, or None."""
    for namespace in _OVERLAY_NAMESPACES:
        value = xattrs.get(namespace + name)
        if value is not None:
            return value
    return None


def whiteout_target(name: str) -> str | None:
    """The name a ``.wh.<name>`` entry deletes, or None when ``name`` is no whiteout.

    The opaque marker and other ``.wh..wh.`` names return None too; callers check
    :data:`WH_OPAQUE` first. The returned name may still be hostile (``""``, ``".."``):
    validate it before use.
    """
    if not name.startswith(WH_PREFIX) or name.startswith(WH_META_PREFIX):
        return None
    return name[len(WH_PREFIX) :]
