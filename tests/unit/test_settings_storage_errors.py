"""OSErrors saying the home (or temp dir) cannot be written become one HomeError naming
the place and the fix (:func:`envkit.settings.storage_error`), in the CLI wherever they
are raised, and in ``envkit load`` where a full store used to read as a bad archive."""

from __future__ import annotations

import argparse
import errno
import os
import tarfile
import tempfile
from pathlib import Path

import pytest

from envkit import cli, settings
from envkit.errors import ArchiveError, ChildError, HomeError


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("ENVKIT_HOME", str(path))
    return path


def full(filename: object = None) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)


def test_a_full_home_names_the_home_and_the_fix(home: Path) -> None:
    err = settings.storage_error(full(str(home / "store" / "blobs" / "x")))
    assert isinstance(err, HomeError) and err.exit_code == 2
    assert err.message == (
        f"cannot write to ENVKIT_HOME ({home}): store/blobs/x: No space left on device"
    )
    assert err.hint is not None and "envkit prune" in err.hint and "ENVKIT_HOME" in err.hint


def test_a_full_disk_without_a_file_name_is_the_homes(home: Path) -> None:
    # write() and fsync() on an open file carry no name; a read never fails with ENOSPC.
    err = settings.storage_error(full())
    assert err is not None and err.message.startswith(f"cannot write to ENVKIT_HOME ({home}):")
    quota = settings.storage_error(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert quota is not None and "Disk quota exceeded" in quota.message


def test_a_full_temp_dir_names_the_temp_dir(home: Path) -> None:
    err = settings.storage_error(full(os.path.join(tempfile.gettempdir(), "envkit-x", "f")))
    assert err is not None
    assert err.message.startswith(
        f"cannot write to the temporary directory ({tempfile.gettempdir()})"
    )
    assert err.hint is not None and "TMPDIR" in err.hint


def test_a_full_disk_elsewhere_is_left_alone(home: Path) -> None:
    assert settings.storage_error(full("/nonexistent-volume/out.tar")) is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file modes")
def test_an_unwritable_home_says_permission_denied_with_a_fix(home: Path) -> None:
    home.chmod(0o500)
    try:
        err = settings.storage_error(
            PermissionError(errno.EACCES, "Permission denied", str(home / "stacks"))
        )
    finally:
        home.chmod(0o700)
    assert err is not None
    assert err.message == f"cannot write to ENVKIT_HOME ({home}): stacks: Permission denied"
    assert err.hint is not None and "chmod 700" in err.hint


def test_a_permission_error_on_a_writable_place_is_another_matter(home: Path) -> None:
    # EACCES from executing a file, EPERM from a chown: not the home's mode.
    exc = PermissionError(errno.EPERM, "Operation not permitted", str(home / "snapshots" / "x"))
    assert settings.storage_error(exc) is None
    assert settings.storage_error(FileNotFoundError(errno.ENOENT, "nope", str(home))) is None


def test_a_read_only_home(home: Path) -> None:
    err = settings.storage_error(OSError(errno.EROFS, "Read-only file system", str(home / "x")))
    assert err is not None and "Read-only file system" in err.message
    assert err.hint is not None and "read-only" in err.hint


def _cli_raising(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    """``envkit ps`` (any built-in verb's fast path) made to raise ``exc``."""

    class Failing:
        def run(self, _args: argparse.Namespace) -> int:
            raise exc

    parser = argparse.ArgumentParser(prog="envkit ps")
    parser.set_defaults(_command=Failing())
    monkeypatch.setattr(cli, "fast_parser", lambda _verb: parser)


def test_the_cli_prints_one_message_and_exits_2(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ENVKIT_DEBUG", raising=False)
    _cli_raising(monkeypatch, OSError(errno.EROFS, "Read-only file system", str(home / "s.json")))
    assert cli.main(["ps"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"envkit: error: cannot write to ENVKIT_HOME ({home}): s.json:")
    assert "Traceback" not in err and len(err.splitlines()) == 2  # the message and its hint
    # ENVKIT_DEBUG=1 shows the traceback, as for every error.
    monkeypatch.setenv("ENVKIT_DEBUG", "1")
    with pytest.raises(OSError, match="Read-only file system"):
        cli.main(["ps"])
    # Any other OSError is not dressed up as one.
    monkeypatch.delenv("ENVKIT_DEBUG")
    _cli_raising(monkeypatch, OSError(errno.EIO, "Input/output error"))
    with pytest.raises(OSError, match="Input/output error"):
        cli.main(["ps"])


def test_load_into_a_full_store_blames_the_store_not_the_archive(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from envkit.oci import archive_read

    archive = tmp_path / "big.oci.tar"
    with tarfile.open(archive, "w"):
        pass
    with pytest.raises(HomeError) as caught, archive_read._archive_errors(str(archive)):
        raise full()
    assert "ENVKIT_HOME" in caught.value.message and "big.oci.tar" not in caught.value.message
    # A real read error still names the archive.
    with (
        pytest.raises(ArchiveError, match=r"big\.oci\.tar: cannot read: Input/output error"),
        archive_read._archive_errors(str(archive)),
    ):
        raise OSError(errno.EIO, "Input/output error")


def test_a_full_disk_while_writing_a_layer_is_the_homes_not_the_user_namespaces(
    home: Path,
) -> None:
    # Run-step layers are written as root of a user namespace: its ENOSPC used to come
    # back as "cannot write the layer" with a hint about user namespaces.
    from envkit.host import as_root
    from envkit.runtime import probes

    check = probes.user_namespaces()
    if not check.ok:
        pytest.skip(f"user namespaces unavailable: {check.detail}")

    def write() -> None:
        raise full()

    with pytest.raises(HomeError, match=r"cannot write to ENVKIT_HOME .*No space left"):
        as_root.call_as_container_root(write)
    with pytest.raises(ChildError, match="Input/output error"):
        as_root.call_as_container_root(
            lambda: (_ for _ in ()).throw(OSError(errno.EIO, "Input/output error"))
        )


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file modes")
def test_a_rename_into_an_unwritable_folder_names_the_target(home: Path) -> None:
    (home / "tmp").mkdir()
    (home / "tmp" / "t").write_bytes(b"")
    (home / "store").mkdir()
    (home / "store").chmod(0o500)
    try:
        exc = PermissionError(errno.EACCES, "Permission denied")
        exc.filename, exc.filename2 = str(home / "tmp" / "t"), str(home / "store" / "index.json")
        err = settings.storage_error(exc)
    finally:
        (home / "store").chmod(0o700)
    assert err is not None and "store/index.json: Permission denied" in err.message
