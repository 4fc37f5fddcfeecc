"""Downloads from a Debian mirror over HTTP(S), verified and cached by sha256.

Files with a known hash (Packages indexes, .debs) live in
``$ENVKIT_HOME/cache/debian/sha256/<hex>`` once verified, so a rebuild never fetches
them again; a partial or corrupt download never gets that name.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from envkit.errors import HashMismatchError, MirrorError
from envkit.settings import private_dir

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    import requests

TIMEOUT = (10, 60)
PARALLEL = 6
_CHUNK = 1 << 20


def cache_root() -> Path:
    """``$ENVKIT_HOME/cache/debian``."""
    return Path(private_dir("cache")) / "debian"


class Mirror:
    """One mirror (``http://host/debian``) and the local cache of what it served."""

    def __init__(self, url: str, cache: Path | None = None) -> None:
        self.url = url.rstrip("/")
        self.cache = cache or cache_root()
        self._session: requests.Session | None = None

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            import requests  # lazy for start-up: requests only when a mirror is asked

            self._session = requests.Session()
            adapter = requests.adapters.HTTPAdapter(pool_maxsize=PARALLEL, max_retries=2)
            self._session.mount("http://", adapter)
            self._session.mount("https://", adapter)
        return self._session

    def get(self, path: str) -> bytes | None:
        """The bytes of ``path`` below the mirror; ``None`` when the mirror says 404."""
        import requests  # lazy for start-up: requests only when a mirror is asked

        url = f"{self.url}/{path}"
        try:
            resp = self.session.get(url, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise _unreachable(url, exc) from None
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise MirrorError(
                f"{url}: the mirror answered HTTP {resp.status_code}",
                hint="check the mirror URL (ENVKIT_DEBIAN_MIRROR) or try again later",
            )
        return resp.content

    def cached_path(self, sha256: str) -> Path:
        """Where content with ``sha256`` is (or will be) cached."""
        return self.cache / "sha256" / sha256

    def fetch(self, path: str, sha256: str, size: int) -> Path:
        """``path`` below the mirror, downloaded once and checked against ``sha256`` and
        ``size``; the cached file's path."""
        dest = self.cached_path(sha256)
        if dest.is_file() and dest.stat().st_size == size:
            return dest
        import requests  # lazy for start-up: requests only when a mirror is asked

        dest.parent.mkdir(parents=True, exist_ok=True)
        url = f"{self.url}/{path}"
        fd, tmp = tempfile.mkstemp(prefix=".partial-", dir=dest.parent)
        try:
            digest = hashlib.sha256()
            written = 0
            with os.fdopen(fd, "wb") as out:
                try:
                    with self.session.get(url, timeout=TIMEOUT, stream=True) as resp:
                        if resp.status_code != 200:
                            raise MirrorError(
                                f"{url}: the mirror answered HTTP {resp.status_code}",
                                hint="the index may be mid-update on the mirror; try again "
                                "in a few minutes, or use another mirror",
                            )
                        for chunk in resp.iter_content(_CHUNK):
                            digest.update(chunk)
                            written += len(chunk)
                            out.write(chunk)
                except requests.RequestException as exc:
                    raise _unreachable(url, exc) from None
            if written != size or digest.hexdigest() != sha256:
                raise HashMismatchError(
                    f"{url}: got {written} bytes hashing to sha256:{digest.hexdigest()}, "
                    f"but the signed index says {size} bytes, sha256:{sha256}",
                    hint="the mirror serves a corrupt or tampered file (or a proxy altered "
                    "it); try again later or use another mirror",
                )
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return dest

    def fetch_all(self, items: Iterable[tuple[str, str, int]]) -> list[Path]:
        """:meth:`fetch` of each ``(path, sha256, size)``, several at a time, in order."""
        todo = list(items)
        with ThreadPoolExecutor(PARALLEL) as pool:
            return list(pool.map(lambda item: self.fetch(*item), todo))


def _unreachable(url: str, exc: Exception) -> MirrorError:
    return MirrorError(
        f"cannot reach the Debian mirror for {url}: {type(exc).__name__}",
        hint="check the network and the mirror (ENVKIT_DEBIAN_MIRROR, mirror=, or the host's "
        "/etc/apt/sources.list*)",
    )
