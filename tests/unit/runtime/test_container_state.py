"""Containers' records on disk: names, lookup by prefix, atomic saves, reaping."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from envkit.errors import EnvkitError, SpecError
from envkit.runtime import logs, state


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ENVKIT_HOME", str(tmp_path))
    return tmp_path


def make(name: str | None = None, **kw: object) -> state.ContainerState:
    return state.create(name=name, image="busybox:1", image_id="sha256:ab", argv=["true"], **kw)  # type: ignore[arg-type]


def test_names_are_unique_and_generated_like_docker() -> None:
    web = make("web")
    assert len(web.id) == 64 and int(web.id, 16) >= 0
    with pytest.raises(EnvkitError, match="already in use"):
        make("web")
    generated = {make().name for _ in range(5)}
    assert len(generated) == 5
    assert all("_" in n and n.replace("_", "").isalnum() for n in generated)
    with pytest.raises(SpecError):
        make("-bad name")
    state.remove(web)
    assert make("web").name == "web"  # a removed container's name is free again


def test_find_by_name_id_and_unique_prefix() -> None:
    a, b = make("a"), make("b")
    assert state.find("a").id == a.id
    assert state.find(b.id).name == "b"
    assert state.find(a.id[:8]).name == "a"
    with pytest.raises(EnvkitError, match="no container"):
        state.find("zzz")
    common = next((n for n in range(1, 64) if a.id[:n] != b.id[:n]), 64) - 1
    if common:  # both ids share a prefix: it is ambiguous
        with pytest.raises(EnvkitError, match="ambiguous"):
            state.find(a.id[:common])


def test_save_is_atomic_and_roundtrips(home: Path) -> None:
    record = make("x")
    record.env = {"A": "1"}
    record.mark_exited(3)
    loaded = state.load(record.dir)
    assert loaded == record
    assert [p.name for p in record.dir.iterdir()] == ["state.json"]  # no temp file left
    data = json.loads((record.dir / "state.json").read_text())
    assert data["status"] == "exited" and data["exit_code"] == 3


def test_reap_kills_a_lost_init_and_removes_rm_containers() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = subprocess.Popen(["sleep", "60"])  # stands for a container init left behind
    try:
        kept, removed = make("kept"), make("removed", auto_remove=True)
        for record in (kept, removed):
            record.status = state.RUNNING
            record.supervisor, record.supervisor_start = dead.pid, 1
        kept.pid, kept.pid_start = orphan.pid, state.process_start(orphan.pid) or 0
        kept.save()
        removed.save()
        alive_one = make("alive")  # supervised by this process: left alone
        alive_one.status = state.RUNNING
        alive_one.save()

        reaped = {r.name for r in state.reap()}
        assert reaped == {"kept", "removed"}
        assert orphan.wait(timeout=10) == -9
        record = state.find("kept")
        assert (record.status, record.exit_code) == ("exited", state.LOST_EXIT_CODE)
        assert not removed.dir.exists()
        assert state.find("alive").status == state.RUNNING
    finally:
        orphan.kill()
        orphan.wait()


def test_a_recycled_pid_is_not_the_container() -> None:
    proc = subprocess.Popen(["sleep", "60"])
    try:
        start = state.process_start(proc.pid)
        assert start is not None and state.alive(proc.pid, start)
        assert not state.alive(proc.pid, start + 1)  # same pid, another process
    finally:
        proc.kill()
        proc.wait()
    assert not state.alive(proc.pid, start)


def test_log_lines_keep_stream_and_partial_lines(tmp_path: Path) -> None:
    path = str(tmp_path / "log")
    writer = logs.LogWriter(path)
    writer.feed("stdout", b"one\ntw")
    writer.feed("stderr", b"err\n")
    writer.feed("stdout", b"o\nthree")
    writer.close()
    records = list(logs.records(path))
    assert [(s, t) for s, t, _ in records] == [
        ("stdout", "one\n"),
        ("stderr", "err\n"),
        ("stdout", "two\n"),
        ("stdout", "three"),
    ]
    assert all(when.endswith("Z") and "T" in when for _, _, when in records)
    assert logs.text(path) == "one\nerr\ntwo\nthree"


# (fed in pieces, a line's records): docker's json-file splits a line at its 16 KiB log
# buffer (moby daemon/logger/copier.go), the pieces without newline.
K16 = 16 * 1024
LONG_LINES = [
    ([b"a" * 40000 + b"\n"], [K16, K16, 40000 - 2 * K16 + 1]),
    ([b"b" * K16 + b"\n"], [K16, 1]),
    ([b"c" * (K16 - 1) + b"\n"], [K16]),
    ([b"d" * 10000, b"d" * 10000, b"\n"], [K16, 20000 - K16 + 1]),
    ([b"e" * 3 * K16], [K16, K16, K16]),
    ([b"f" * (K16 + 5)], [K16, 5]),
]


@pytest.mark.parametrize(("chunks", "sizes"), LONG_LINES)
def test_long_lines_are_logged_in_16k_pieces(
    tmp_path: Path, chunks: list[bytes], sizes: list[int]
) -> None:
    path = str(tmp_path / "log")
    writer = logs.LogWriter(path)
    for chunk in chunks:
        writer.feed("stdout", chunk)
    writer.close()
    texts = [t for _, t, _ in logs.records(path)]
    assert [len(t) for t in texts] == sizes
    assert "".join(texts).encode() == b"".join(chunks)
    assert all("\n" not in t for t in texts[:-1])


def test_output_without_newlines_is_logged_as_it_comes(tmp_path: Path) -> None:
    """A container writing without newlines (``yes | tr -d '\\n'``) grew its monitor's
    memory without bound (each chunk copied the whole pending line again) and its log
    stayed empty until it exited."""
    path = str(tmp_path / "log")
    writer = logs.LogWriter(path)
    for _ in range(2000):
        writer.feed("stdout", b"y" * 4096)
    assert os.path.getsize(path) >= 2000 * 4096 - K16
    assert sum(len(p) for p in writer._partial.values()) < K16
    writer.close()
    assert len(logs.text(path)) == 2000 * 4096


def test_remove_dir_removes_closed_dirs_and_never_follows_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    top = tmp_path / "ctr"
    closed = top / "work" / "work"  # overlay leaves its work dir with mode 0
    (closed / "deep" / "er").mkdir(parents=True)
    (closed / "deep" / "er" / "file").write_text("x")
    (top / "upper").mkdir()
    (top / "upper" / "escape").symlink_to(outside)
    (top / "upper" / "dangling").symlink_to(tmp_path / "nowhere")
    (top / "state.json").write_text("{}")
    closed.chmod(0)
    state.remove_dir(top)
    assert not top.exists()
    assert (outside / "keep.txt").read_text() == "mine"
