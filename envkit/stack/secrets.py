"""Runtime secrets: each value in a file of a private dir on a tmpfs, bind-mounted
read-only at ``/run/secrets/<name>``.

The value is read through :meth:`envkit.spec.Secret.reveal` when the stack starts and
written only there: never into a layer, a state file or a log. The dir is mode 0700 under
``/dev/shm`` (memory, gone at reboot; ``$XDG_RUNTIME_DIR`` or the system temp dir when
there is no ``/dev/shm``), and is removed by ``down``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from envkit.errors import EnvkitError
from envkit.runtime.config import BindMount

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    # Annotations only: `down` removes secret dirs without loading the spec objects.
    from envkit.spec import Secret, Stack

MOUNT_DIR = "/run/secrets"


def private_dir(stack: str) -> Path:
    """A new 0700 dir for the secret files of ``stack``."""
    import tempfile  # lazy: only the supervisor makes one; tempfile stays off `up`/`down`

    for base in ("/dev/shm", os.environ.get("XDG_RUNTIME_DIR", ""), tempfile.gettempdir()):
        if base and os.path.isdir(base) and os.access(base, os.W_OK | os.X_OK):
            return Path(tempfile.mkdtemp(prefix=f"envkit-secrets-{stack}-", dir=base))
    return Path(tempfile.mkdtemp(prefix=f"envkit-secrets-{stack}-"))


def write_all(stack: Stack, directory: Path, *, missing_only: bool = False) -> None:
    """Reveal every secret the services mount into ``directory`` (mode 0400 files);
    with ``missing_only``, only those without a file yet (a running container keeps
    the file it has mounted).

    Raises the secret's :class:`~envkit.errors.EnvkitError` (naming it, never its
    value) when a required value is missing: before anything starts.
    """
    mounted = {s.name: s for service in stack.services for s in service.secrets}
    for name in sorted(mounted):
        if missing_only and (directory / name).exists():
            continue
        _write(directory / name, mounted[name].reveal(stack.base_dir))


def check(stack: Stack, names: Sequence[str]) -> None:
    """Read every secret services ``names`` mount, keeping nothing: a missing file or
    variable fails ``up`` before anything starts, naming the secret."""
    for service in names:
        for secret in stack[service].secrets:
            secret.reveal(stack.base_dir)


def _write(path: Path, value: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o400)
    with os.fdopen(fd, "wb") as f:
        f.write(value)


def mounts(secrets: tuple[Secret, ...], directory: Path) -> list[BindMount]:
    """Read-only bind mounts of a service's secret files at /run/secrets/<name>."""
    return [
        BindMount(str(directory / s.name), f"{MOUNT_DIR}/{s.name}", readonly=True) for s in secrets
    ]


def hand_to(secrets: tuple[Secret, ...], directory: Path, uid: int, gid: int) -> None:
    """Make a service's secret files readable by its container user ``uid:gid``.

    The files are chowned to the host ids that user is, when the caller may do so (root,
    or the caller itself); else they are made readable by all, which still reaches no
    one on the host: the dir is 0700.
    """
    if not secrets:
        return
    from envkit.host import idmap  # lazy: only the supervisor; id maps stay off `up`/`down`

    maps = idmap.plan()
    for secret in secrets:
        path = directory / secret.name
        try:
            host_uid, host_gid = maps.to_host_uid(uid), maps.to_host_gid(gid)
            owner = os.stat(path).st_uid
            if owner not in (os.geteuid(), host_uid):
                # Another service with another user mounts it too: both must read it.
                os.chmod(path, 0o444)
            elif (host_uid, host_gid) != (os.geteuid(), os.getegid()):
                os.chown(path, host_uid, host_gid)
        except (OSError, EnvkitError):
            os.chmod(path, 0o444)


def remove(directory: str) -> None:
    """Delete a stack's secret dir (no error when it is already gone)."""
    if directory:
        import shutil  # lazy: a supervisor needs it only at its end (it loads zlib, bz2, lzma)

        shutil.rmtree(directory, ignore_errors=True)
