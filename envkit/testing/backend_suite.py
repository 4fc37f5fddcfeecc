"""The conformance suite every volume backend runs in its own tests.

Subclass :class:`BackendSuite` in a test module (the class name must start with
``Test`` for pytest to collect it) and override the ``backend`` fixture::

    from envkit.testing.backend_suite import BackendSuite

    class TestMyBackend(BackendSuite):
        @pytest.fixture
        def backend(self, envkit_home):
            return MyBackend()

Every test of the suite then runs against it: create (idempotent, listed, described),
validation of names and options before anything exists, mounts from two users at once,
persistence across unmount and mount again (a stack's ``down`` and ``up``), concurrent
use from threads, remove, snapshot and restore, size reporting, and the errors for a
volume that does not exist. Tests a backend cannot pass by design are skipped according
to its :class:`~envkit.plugins.interfaces.BackendCapabilities` (a tmpfs volume has no
host path, so nothing can be checked through one), never silently passed.

Tests with real containers run when the ``container_image`` fixture returns the name of
an image in the store that has ``sh``, ``cat``, ``grep`` and ``echo`` (busybox); they are
skipped otherwise. ``options`` (a class attribute) are the options the suite's volumes are
created with, ``bad_options`` ones the backend must reject.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import ClassVar

import pytest

from envkit.errors import SpecError, VolumeError
from envkit.plugins.interfaces import (
    BackendCapabilities,
    MountSource,
    SnapshotInfo,
    VolumeBackend,
    VolumeInfo,
)

__all__ = ["BackendSuite"]


def _write_tree(root: Path) -> dict[str, bytes]:
    files = {
        "a.txt": b"alpha\n",
        "dir/b.bin": bytes(range(256)) * 40,
        "dir/sub/c.txt": b"gamma\n",
        "empty": b"",
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "link").symlink_to("a.txt")
    return files


def _read_tree(root: Path) -> dict[str, bytes]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = b"-> " + os.readlink(path).encode()
        elif path.is_file():
            out[rel] = path.read_bytes()
        else:
            out[rel + "/"] = b""
    return out


class BackendSuite:
    """Conformance tests for a :class:`~envkit.plugins.interfaces.VolumeBackend`."""

    #: Options the suite's volumes are created with.
    options: ClassVar[Mapping[str, str]] = {}
    #: Options the backend must reject with :class:`~envkit.errors.SpecError`.
    bad_options: ClassVar[Mapping[str, str]] = {"no-such-option-x": "1"}

    # -- fixtures a subclass overrides ----------------------------------------------------
    @pytest.fixture
    def backend(self) -> VolumeBackend:
        """The backend under test (override; use ``envkit_home`` for a private home)."""
        raise NotImplementedError("override the `backend` fixture in your suite class")

    @pytest.fixture
    def container_image(self) -> str | None:
        """An image in the store to run real containers with; None skips those tests."""
        return None

    # -- the suite's own fixtures ------------------------------------------------------
    @pytest.fixture
    def caps(self, backend: VolumeBackend) -> BackendCapabilities:
        return backend.capabilities()

    @pytest.fixture
    def volume(self, backend: VolumeBackend) -> Iterator[str]:
        """A fresh volume, removed after the test."""
        name = f"suite-{uuid.uuid4().hex[:10]}"
        backend.create(name, dict(self.options))
        yield name
        with contextlib.suppress(VolumeError):
            backend.remove(name)

    def host_dir(self, backend: VolumeBackend, volume: str, mount_id: str) -> Path:
        source = backend.mount(volume, mount_id)
        assert source.kind == "bind", f"expected a bind mount, got {source}"
        path = Path(source.source)
        assert path.is_dir(), f"{path}: the bind source is not a directory"
        return path

    def needs(self, caps: BackendCapabilities, *what: str) -> None:
        missing = [w for w in what if not getattr(caps, w)]
        if missing:
            pytest.skip(f"the backend does not declare {', '.join(missing)}")

    # -- create, get, list ---------------------------------------------------------------
    def test_name_is_a_string(self, backend: VolumeBackend) -> None:
        assert isinstance(backend.name, str) and backend.name
        assert isinstance(backend.capabilities(), BackendCapabilities)

    def test_create_is_listed_and_idempotent(self, backend: VolumeBackend, volume: str) -> None:
        assert volume in backend.list()
        backend.create(volume, dict(self.options))  # again: no error, no change
        assert backend.list().count(volume) == 1
        assert backend.list() == sorted(backend.list())

    def test_get_describes_the_volume(self, backend: VolumeBackend, volume: str) -> None:
        info = backend.get(volume)
        assert isinstance(info, VolumeInfo)
        assert (info.name, info.backend) == (volume, backend.name)
        assert dict(info.options) == dict(self.options)

    def test_bad_options_rejected_before_anything_exists(self, backend: VolumeBackend) -> None:
        with pytest.raises(SpecError):
            backend.validate(dict(self.bad_options))
        name = f"suite-bad-{uuid.uuid4().hex[:8]}"
        with pytest.raises(SpecError):
            backend.create(name, dict(self.bad_options))
        assert name not in backend.list()
        backend.validate(dict(self.options))

    @pytest.mark.parametrize("bad", ["", "../escape", "a/b", ".hidden", "x" * 200])
    def test_bad_names_rejected(self, backend: VolumeBackend, bad: str) -> None:
        with pytest.raises((SpecError, VolumeError)):
            backend.create(bad, dict(self.options))

    def test_missing_volume_errors(self, backend: VolumeBackend) -> None:
        missing = f"suite-missing-{uuid.uuid4().hex[:8]}"
        for call in (
            lambda: backend.get(missing),
            lambda: backend.remove(missing),
            lambda: backend.mount(missing, "m1"),
            lambda: backend.size(missing),
        ):
            with pytest.raises(VolumeError, match=missing):
                call()

    # -- mounts -----------------------------------------------------------------------
    def test_mount_gives_a_source(
        self, backend: VolumeBackend, volume: str, caps: BackendCapabilities
    ) -> None:
        source = backend.mount(volume, "m1")
        assert isinstance(source, MountSource)
        if caps.host_path:
            assert source.kind == "bind" and Path(source.source).is_dir()
        else:
            assert source.kind == "tmpfs"
        if caps.size_limit and "size" in self.options:
            assert int(source.options["size"]) > 0
        backend.unmount(volume, "m1")

    def test_two_mounts_share_data(
        self, backend: VolumeBackend, volume: str, caps: BackendCapabilities
    ) -> None:
        self.needs(caps, "host_path", "shared")
        one = self.host_dir(backend, volume, "m1")
        two = self.host_dir(backend, volume, "m2")
        (one / "from-one").write_text("1")
        assert (two / "from-one").read_text() == "1"
        backend.unmount(volume, "m1")
        backend.unmount(volume, "m2")

    def test_data_persists_across_unmount_and_mount(
        self, backend: VolumeBackend, volume: str, caps: BackendCapabilities
    ) -> None:
        self.needs(caps, "host_path", "persistent")
        files = _write_tree(self.host_dir(backend, volume, "up-1"))
        backend.unmount(volume, "up-1")  # down
        again = self.host_dir(backend, volume, "up-2")  # up
        got = _read_tree(again)
        assert {k: v for k, v in got.items() if k in files} == files

    def test_concurrent_use(self, backend: VolumeBackend, caps: BackendCapabilities) -> None:
        name = f"suite-conc-{uuid.uuid4().hex[:8]}"
        errors: list[BaseException] = []

        def worker(i: int) -> None:
            try:
                backend.create(name, dict(self.options))
                source = backend.mount(name, f"w{i}")
                if caps.host_path:
                    (Path(source.source) / f"w{i}").write_text(str(i))
                backend.unmount(name, f"w{i}")
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        try:
            assert errors == []
            assert backend.list().count(name) == 1
            if caps.host_path and caps.shared:
                seen = self.host_dir(backend, name, "check")
                assert sorted(p.name for p in seen.iterdir()) == sorted(f"w{i}" for i in range(8))
        finally:
            backend.remove(name)

    # -- remove ------------------------------------------------------------------------
    def test_remove_deletes_data(
        self, backend: VolumeBackend, volume: str, caps: BackendCapabilities
    ) -> None:
        if caps.host_path:
            path = self.host_dir(backend, volume, "m1")
            _write_tree(path)
            (path / "dir").chmod(0o500)  # a container may leave read-only directories
            backend.unmount(volume, "m1")
        backend.remove(volume)
        assert volume not in backend.list()
        with pytest.raises(VolumeError):
            backend.get(volume)
        backend.create(volume, dict(self.options))
        if caps.host_path:
            assert list(self.host_dir(backend, volume, "m2").iterdir()) == []

    # -- size ----------------------------------------------------------------------------
    def test_size_reports_bytes(
        self, backend: VolumeBackend, volume: str, caps: BackendCapabilities
    ) -> None:
        if not caps.host_path:
            assert backend.size(volume) >= -1
            return
        empty = backend.size(volume)
        path = self.host_dir(backend, volume, "m1")
        (path / "blob").write_bytes(b"x" * 100_000)
        os.link(path / "blob", path / "same-blob")  # a hard link is not counted twice
        size = backend.size(volume)
        assert 100_000 <= size - empty < 200_000
        assert backend.get(volume).size == size

    # -- snapshots -----------------------------------------------------------------------
    def test_snapshot_and_restore(
        self, backend: VolumeBackend, volume: str, caps: BackendCapabilities
    ) -> None:
        self.needs(caps, "snapshots", "host_path")
        path = self.host_dir(backend, volume, "m1")
        _write_tree(path)
        before = _read_tree(path)
        snap = backend.snapshot(volume, "s1")
        assert isinstance(snap, SnapshotInfo)
        assert (snap.volume, snap.name) == (volume, "s1")
        assert snap.digest.startswith("sha256:") and snap.size > 0
        (path / "a.txt").write_text("changed")
        (path / "new.txt").write_text("new")
        (path / "dir" / "sub" / "c.txt").unlink()
        backend.unmount(volume, "m1")
        backend.restore(volume, "s1")
        after = self.host_dir(backend, volume, "m2")
        assert _read_tree(after) == before

    def test_snapshots_of_equal_data_are_equal(
        self, backend: VolumeBackend, volume: str, caps: BackendCapabilities
    ) -> None:
        self.needs(caps, "snapshots", "host_path")
        _write_tree(self.host_dir(backend, volume, "m1"))
        first = backend.snapshot(volume, "one")
        second = backend.snapshot(volume, "two")
        assert first.digest == second.digest

    def test_restore_of_unknown_snapshot_errors(
        self, backend: VolumeBackend, volume: str, caps: BackendCapabilities
    ) -> None:
        self.needs(caps, "snapshots")
        with pytest.raises(VolumeError):
            backend.restore(volume, f"nope-{uuid.uuid4().hex[:8]}")

    def test_snapshots_refused_when_not_supported(
        self, backend: VolumeBackend, volume: str, caps: BackendCapabilities
    ) -> None:
        if caps.snapshots:
            pytest.skip("the backend supports snapshots")
        with pytest.raises(VolumeError):
            backend.snapshot(volume, "s1")
        with pytest.raises(VolumeError):
            backend.restore(volume, "s1")

    # -- real containers (opt-in) -------------------------------------------------------
    def _run(self, image: str, script: str, source: MountSource) -> tuple[int, str]:
        # lazy: only the opt-in container tests run containers (downward)
        import tempfile

        import envkit
        from envkit.stack.volume_backends import runtime_mount

        mount = runtime_mount(source, "/vol")
        kwargs: dict[str, object] = {}
        if source.kind == "bind":
            kwargs["volumes"] = [mount]
        else:
            kwargs["tmpfs"] = ["/vol"]
        with tempfile.TemporaryFile() as out, open(os.devnull, "rb") as stdin:
            stdio = (stdin.fileno(), out.fileno(), out.fileno())
            code = envkit.run(image, ["sh", "-c", script], stdio=stdio, **kwargs).wait()  # type: ignore[arg-type]
            out.seek(0)
            return code, out.read().decode(errors="replace")

    def test_containers_use_the_volume(
        self,
        backend: VolumeBackend,
        volume: str,
        caps: BackendCapabilities,
        container_image: str | None,
    ) -> None:
        if container_image is None:
            pytest.skip("no container image: override the container_image fixture to opt in")
        first = backend.mount(volume, "c1")
        second = backend.mount(volume, "c2")
        if first.kind == "bind":
            os.chmod(first.source, 0o777)  # container root may be a subordinate id
        code, out = self._run(
            container_image, "echo hello > /vol/greeting && grep ' /vol ' /proc/mounts", first
        )
        assert code == 0, out
        if first.kind == "tmpfs":
            assert " tmpfs " in out
        code, out = self._run(container_image, "cat /vol/greeting", second)
        if caps.shared:
            assert (code, out) == (0, "hello\n")
        else:
            assert code != 0  # each container has its own data
        backend.unmount(volume, "c1")
        backend.unmount(volume, "c2")
        if caps.persistent and caps.host_path:
            third = backend.mount(volume, "c3")
            assert self._run(container_image, "cat /vol/greeting", third) == (0, "hello\n")
