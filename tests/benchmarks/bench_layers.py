"""Layer tars: envkit's write_layer / extract_layer beside GNU tar on ~2000 small files.

The tree lives in /dev/shm when it exists (tmpfs: the disk is not what is measured),
otherwise in the default temp dir. The peer commands are the closest GNU tar gets to
envkit's job: ``tar --sort=name --numeric-owner --zstd -cf`` (deterministic order,
compressed) and ``tar -xf`` (extraction, no safety beyond tar's own).
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path

from envkit.oci.layer_reader import extract_layer
from envkit.oci.layer_writer import Compression, write_layer
from tests.benchmarks.common import Result, have, median_time, sh

FILES = 2000


def _scratch_base() -> str | None:
    return "/dev/shm" if os.path.isdir("/dev/shm") else None


def _make_tree(root: Path) -> None:
    for i in range(FILES):
        sub = root / f"d{i % 40:02d}" / f"s{i % 7}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"file{i:05d}.txt").write_bytes(f"content of file {i}\n".encode() * (1 + i % 8))
    (root / "link").symlink_to("d00/s0")


def _bench(work: Path, src: Path, compression: Compression, tar_flag: str) -> list[Result]:
    layer = work / f"layer.{compression}"
    peer_tar = work / f"peer.{compression}"
    dest = work / "dest"

    def envkit_write() -> None:
        with open(layer, "wb") as out:
            write_layer(src, out, compression=compression, source_date_epoch=0)

    def peer_write() -> None:
        sh(["tar", "--sort=name", "--numeric-owner", "--mtime=@0", "--clamp-mtime",
            tar_flag, "-cf", str(peer_tar), "-C", str(src), "."])  # fmt: skip

    def fresh_dest() -> None:
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir()

    def envkit_extract() -> None:
        with open(layer, "rb") as stream:
            extract_layer(stream, dest)

    def peer_extract() -> None:
        sh(["tar", tar_flag, "-xf", str(peer_tar), "-C", str(dest)])

    write_s = median_time(envkit_write)
    extract_s = median_time(envkit_extract, setup=fresh_dest)
    note = f"{FILES} files in {'tmpfs /dev/shm' if _scratch_base() else 'the temp dir'}"
    peer_write_s = peer_extract_s = None
    if have("tar"):
        peer_write_s = median_time(peer_write)
        peer_extract_s = median_time(peer_extract, setup=fresh_dest)
    return [
        Result(f"layer write ({compression}, {FILES} files)", write_s, "tar", peer_write_s, note),
        Result(f"layer extract ({compression}, {FILES} files)", extract_s, "tar", peer_extract_s),
    ]


def main() -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="envkit-bench-layers-", dir=_scratch_base()) as tmp:
        work = Path(tmp)
        src = work / "src"
        src.mkdir()
        _make_tree(src)
        results = _bench(work, src, "zstd", "--zstd") if have("zstd") else []
        results += _bench(work, src, "gzip", "--gzip")
        # Sanity: a broken writer must not look fast.
        check = io.BytesIO()
        info = write_layer(src, check, compression="none")
        assert info.size > FILES * 512
        return results


if __name__ == "__main__":
    from tests.benchmarks.common import table

    print(table(main()))
