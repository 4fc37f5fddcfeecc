"""Build secrets of one run step: 0400 files outside any layer, and a log mask.

Each value is written to a private directory on a tmpfs (``/dev/shm`` when usable, else
``$TMPDIR``), bind-mounted read-only at ``/run/secrets/<name>`` for that step only, and
removed when the step ends. The step's upper dir only ever holds the empty mount point,
which the executor removes before the layer is written. :meth:`StepSecrets.mask` hides
the values in the step's output before it reaches the build log or an error message.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from envkit.runtime.config import BindMount
from envkit.spec.secret import Secret

MOUNT_DIR = "/run/secrets"
MASK = "****"


def _tmp_root() -> str | None:
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


class StepSecrets:
    """Use as a context manager around one run step; :attr:`mounts` go to its container."""

    def __init__(self, secrets: Sequence[Secret], base_dir: Path | None) -> None:
        self._secrets = tuple(secrets)
        self._base_dir = base_dir
        self._dir: str | None = None
        self._values: list[bytes] = []
        self.mounts: list[BindMount] = []

    def __enter__(self) -> StepSecrets:
        if not self._secrets:
            return self
        import tempfile  # lazy: only a step with secrets (shutil and tempfile cost ~2.5 ms)

        self._dir = tempfile.mkdtemp(prefix="envkit-secrets-", dir=_tmp_root())
        try:
            owner = _container_root()
            for secret in self._secrets:
                value = secret.reveal(self._base_dir)
                self._remember(value)
                path = os.path.join(self._dir, secret.name)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o400)
                try:
                    os.write(fd, value)
                    if owner is not None:
                        os.fchown(fd, *owner)
                finally:
                    os.close(fd)
                self.mounts.append(BindMount(path, f"{MOUNT_DIR}/{secret.name}", readonly=True))
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._remove()

    def _remove(self) -> None:
        if self._dir is not None:
            import shutil  # lazy: only a step with secrets

            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _remember(self, value: bytes) -> None:
        # Output is masked line by line: a multi-line value is masked by its lines too.
        found = {value, value.strip(), *(part.strip() for part in value.splitlines())}
        self._values += sorted((v for v in found if v), key=len, reverse=True)

    def mask(self, text: bytes) -> bytes:
        """``text`` with every secret value (and every line of one) replaced by ``****``."""
        for value in self._values:
            text = text.replace(value, MASK.encode())
        return text


def _container_root() -> tuple[int, int] | None:
    """As root: the host ids of container root, who must be able to read the files."""
    if os.geteuid() != 0:
        return None
    from envkit.host import idmap  # lazy: only as root (downward)

    maps = idmap.plan()
    return maps.to_host_uid(0), maps.to_host_gid(0)
