"""The store is private: ``$ENVKIT_HOME`` and its folders are 0700 (issue 14).

Snapshots keep the images' set-uid files and owners; a home other local users can
traverse let them run those files (a rootless user's setuid binary gave ``nobody`` that
user's euid). podman keeps its storage 0700, docker /var/lib/docker 0710.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import pwd
import stat
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from envkit import settings
from envkit.oci.digest import sha256_bytes
from envkit.store import snapshots
from envkit.store.store import Store


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def first_level_modes(home: Path) -> dict[str, int]:
    return {p.name: mode(p) for p in home.iterdir() if p.is_dir() and not p.is_symlink()}


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ``ENVKIT_HOME`` that does not exist yet (nor does its parent)."""
    home = tmp_path / "data" / "envkit"
    monkeypatch.setenv("ENVKIT_HOME", str(home))
    return home


def _containers() -> Path:
    from envkit.runtime import state

    return state.containers_dir()


def _network() -> Path:
    from envkit.network import state

    return state.root()


def _stacks() -> Path:
    from envkit.stack import state

    return state.stacks_dir()


def _cache() -> Path:
    from envkit.build import cache

    return cache.cache_dir()


def _debian_cache() -> Path:
    from envkit.builtin.debian import fetch

    return fetch.cache_root()


def _volumes() -> Path:
    from envkit.builtin.volumes import LocalVolumes

    return LocalVolumes().root


def _volume_snapshots() -> Path:
    from envkit.builtin.volumes import LocalVolumes

    return LocalVolumes().snapshots_root


def _tmpfs_volumes() -> Path:
    from envkit.builtin.volumes import TmpfsVolumes

    return TmpfsVolumes().root


def _run_cache() -> Path:
    from envkit.store import resolved

    return Path(resolved._entry_path("busybox")).parent


def _auth() -> Path:
    from envkit.registry import credentials

    return credentials.auth_file().parent


ACCESSORS: dict[str, Callable[[], Path]] = {
    "store": settings.store_root,
    "snapshots": snapshots.snapshots_dir,
    "containers": _containers,
    "network": _network,
    "stacks": _stacks,
    "cache": _cache,
    "cache/debian": _debian_cache,
    "volumes": _volumes,
    "volume-snapshots": _volume_snapshots,
    "tmpfs-volumes": _tmpfs_volumes,
    "run-cache": _run_cache,
    ".": _auth,
}


@pytest.mark.parametrize("where", sorted(ACCESSORS))
def test_every_folder_of_a_fresh_home_is_made_0700(fresh_home: Path, where: str) -> None:
    path = ACCESSORS[where]()
    assert path == fresh_home / where if where != "." else path == fresh_home
    path.mkdir(parents=True, exist_ok=True)  # what the writer does next
    assert mode(fresh_home) == 0o700
    top = fresh_home / where.split("/")[0]
    assert mode(top) == 0o700, f"{top} is {mode(top):o}"
    assert mode(fresh_home.parent) & 0o077 != 0, "the home's parents keep the usual modes"


def test_writes_to_a_fresh_home_leave_only_0700_folders(
    fresh_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store.default()
    layer = layer_tar({"bin/tool": (b"#!/bin/sh\n", 0o755)})
    desc = store.write_blob(layer)
    snapshots.prepare(store, [desc.digest], [sha256_bytes(layer)])
    assert mode(fresh_home) == 0o700
    found = first_level_modes(fresh_home)
    assert {"store", "snapshots"} <= set(found)
    assert found == dict.fromkeys(found, 0o700)
    assert "tightened" not in caplog.text, "a fresh home needs no notice"


def loose_home(home: Path) -> None:
    """A home as envkit made it before: 0755 folders (one of another mode, one file)."""
    for name in ("store", "snapshots", "containers"):
        (home / name).mkdir(parents=True)
    (home / "volumes").mkdir(mode=0o750)
    (home / "config.toml").write_text("")
    for path in (home, home / "store", home / "snapshots", home / "containers"):
        path.chmod(0o755)
    (home / "volumes").chmod(0o750)
    (home / "config.toml").chmod(0o644)


def test_a_loose_home_is_tightened_on_the_next_write_with_a_notice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    home = tmp_path / "old-home"
    loose_home(home)
    monkeypatch.setenv("ENVKIT_HOME", str(home))
    with caplog.at_level(logging.WARNING, logger="envkit"):
        Store.default().write_blob(b"anything")
        snapshots.snapshots_dir()
    assert mode(home) == 0o700
    assert first_level_modes(home) == dict.fromkeys(first_level_modes(home), 0o700)
    assert mode(home / "config.toml") == 0o644, "files keep their modes"
    notices = [r for r in caplog.records if r.name == "envkit"]
    assert [r.levelno for r in notices] == [logging.WARNING]
    assert notices[0].getMessage() == (
        f"envkit: tightened {home} to 0700 (other users could run setuid files from images)"
    )


def test_the_notice_is_shown_once_by_the_cli(tmp_path: Path) -> None:
    home = tmp_path / "old-home"
    loose_home(home)

    def images() -> subprocess.CompletedProcess[str]:
        env = {"ENVKIT_HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        return subprocess.run(
            [sys.executable, "-m", "envkit", "images"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )

    first = images()
    assert first.returncode == 0, first.stderr
    assert first.stderr.splitlines() == [
        f"envkit: tightened {home} to 0700 (other users could run setuid files from images)"
    ]
    second = images()
    assert second.returncode == 0, second.stderr
    assert second.stderr == ""
    assert mode(home) == 0o700


def test_the_notice_names_the_home_with_a_tilde(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("ENVKIT_HOME", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    home = tmp_path / ".local" / "share" / "envkit"
    home.mkdir(parents=True, mode=0o755)
    home.chmod(0o755)
    with caplog.at_level(logging.WARNING, logger="envkit"):
        assert settings.private_home() == str(home)
    assert caplog.messages == [
        "envkit: tightened ~/.local/share/envkit to 0700 "
        "(other users could run setuid files from images)"
    ]


def test_a_private_home_costs_one_stat_and_no_logging(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    code = (
        "import sys\n"
        "from envkit import settings\n"
        "settings.private_dir('containers'); settings.private_dir('run-cache')\n"
        "settings.private_dir('containers'); settings.private_home()\n"
        "print('logging' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"ENVKIT_HOME": str(home), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    assert done.stdout.strip() == "False"
    assert done.stderr == ""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown the home to another user")
def test_a_home_of_another_user_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    home = tmp_path / "theirs"
    home.mkdir()
    home.chmod(0o755)
    nobody = pwd.getpwnam("nobody")
    os.chown(home, nobody.pw_uid, nobody.pw_gid)
    monkeypatch.setenv("ENVKIT_HOME", str(home))
    with caplog.at_level(logging.WARNING, logger="envkit"):
        settings.private_home()
    assert mode(home) == 0o755
    assert caplog.messages == []


# -- another local user cannot reach a setuid file of an image ---------------------------


def layer_tar(files: dict[str, tuple[bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, (data, file_mode) in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), file_mode, 0, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def reachable_tmp() -> Iterator[Path]:
    """A temp dir other users may traverse (pytest's own is 0700, which would hide the
    home whatever its mode)."""
    path = Path(tempfile.mkdtemp(prefix="envkit-modes-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def as_nobody(action: Callable[[], object]) -> int:
    """Run ``action`` in a forked child as ``nobody``; 0, or the errno it failed with."""
    nobody = pwd.getpwnam("nobody")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 100
        try:
            os.setgroups([])
            os.setresgid(nobody.pw_gid, nobody.pw_gid, nobody.pw_gid)
            os.setresuid(nobody.pw_uid, nobody.pw_uid, nobody.pw_uid)
            action()
            code = 0
        except OSError as exc:
            code = exc.errno or 99
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another local user needs root")
def test_another_local_user_cannot_reach_a_setuid_file_of_an_image(
    reachable_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = reachable_tmp / "envkit"
    monkeypatch.setenv("ENVKIT_HOME", str(home))
    store = Store.default()
    layer = layer_tar({"bin/id-suid": (b"\x7fELF not really\n", 0o4755)})
    desc = store.write_blob(layer)
    snap = snapshots.prepare(store, [desc.digest], [sha256_bytes(layer)])
    target = Path(snap.layers[0]) / "bin" / "id-suid"
    st = target.lstat()
    assert st.st_mode & stat.S_ISUID, "the image's set-uid bit is kept (as docker does)"

    assert as_nobody(lambda: os.stat(reachable_tmp)) == 0, "the home's parent is reachable"
    assert as_nobody(lambda: os.stat(target)) == errno.EACCES
    assert as_nobody(lambda: os.execv(str(target), [str(target)])) == errno.EACCES
    assert as_nobody(lambda: os.listdir(home)) == errno.EACCES

    # The same snapshot under a 0755 home (as before): the check above is not vacuous.
    for path in (home, home / "snapshots"):
        path.chmod(0o755)
    assert as_nobody(lambda: os.stat(target)) == 0
