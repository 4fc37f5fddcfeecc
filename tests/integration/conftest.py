"""Fixtures for tests that start real containers: a busybox rootfs and a user-ns probe."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

BUSYBOX = Path(os.environ.get("ENVKIT_TEST_BUSYBOX", "/bin/busybox"))
APPLETS = [
    "sh",
    "cat",
    "echo",
    "env",
    "hostname",
    "id",
    "kill",
    "ls",
    "mkdir",
    "mount",
    "ping",
    "ps",
    "readlink",
    "rm",
    "sleep",
    "test",
    "touch",
    "true",
    "false",
    "umount",
    "unshare",
    "wget",
]


@pytest.fixture(scope="session")
def userns() -> None:
    """Skip (with the probe's reason) when this host refuses unprivileged user namespaces."""
    from envkit.runtime import probes

    check = probes.user_namespaces()
    if not check.ok:
        pytest.skip(f"user namespaces unavailable: {check.detail}")


@pytest.fixture(scope="session")
def busybox_rootfs(userns: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only lower layer: static busybox, applet links, /etc/passwd and /etc/group.

    Owned by the host id that container root maps to (as root that is a subordinate id,
    as a layer store extracting for this user would leave it).
    """
    from envkit.host import idmap

    if not BUSYBOX.exists():
        pytest.skip(f"{BUSYBOX} missing: apt-get install busybox-static")
    root = tmp_path_factory.mktemp("busybox-rootfs")
    for name in ("bin", "etc", "proc", "dev", "sys", "tmp", "root", "home/user"):
        (root / name).mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\nuser:x:1000:\n")
    (root / "tmp").chmod(0o1777)
    if os.geteuid() == 0:
        maps = idmap.plan()
        uid, gid = maps.to_host_uid(0), maps.to_host_gid(0)
        for path in (root, *root.rglob("*")):
            os.lchown(path, uid, gid)
    return root


@dataclass
class Scratch:
    """Per-test writable layer dirs beside the shared read-only rootfs."""

    lower: Path
    upper: Path
    work: Path


@pytest.fixture
def scratch(busybox_rootfs: Path, tmp_path: Path) -> Iterator[Scratch]:
    upper, work = tmp_path / "upper", tmp_path / "work"
    upper.mkdir()
    work.mkdir()
    yield Scratch(busybox_rootfs, upper, work)
