"""Context hashing: source selection, ignore rules, reproducible digests, the stat index."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from envkit.build import context as ctx
from envkit.build.context import ContextError, ContextHasher, hash_selection

OLD = 1_600_000_000


def _tree(root: Path) -> Path:
    files = {
        "app.py": "print('app')\n",
        "src/a.py": "a = 1\n",
        "src/b.py": "b = 2\n",
        "src/data.txt": "data\n",
        "src/pkg/c.py": "c = 3\n",
        ".git/HEAD": "ref: main\n",
        "build/out.o": "obj\n",
        "build/keep.txt": "keep\n",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "link").symlink_to("src/a.py")
    (root / ".dockerignore").write_text(".git\nbuild\n!build/keep.txt\n")
    _age(root)
    return root


def _age(root: Path) -> None:
    """Give every file an old mtime, as a real checkout has (so no entry is racy)."""
    for path in [root, *root.rglob("*")]:
        os.utime(path, (OLD, OLD), follow_symlinks=False)


def _dests(sel: ctx.Selection) -> list[str]:
    return [e.dest for e in sel.entries]


@pytest.fixture
def tree(tmp_path: Path, envkit_home: Path) -> Path:
    return _tree(tmp_path / "ctx")


def test_whole_context_applies_ignore_file(tree: Path) -> None:
    sel = hash_selection(tree)
    assert _dests(sel) == [
        ".", ".dockerignore", "app.py", "build/keep.txt", "link",
        "src", "src/a.py", "src/b.py", "src/data.txt", "src/pkg", "src/pkg/c.py",
    ]  # fmt: skip
    link = next(e for e in sel.entries if e.kind == "symlink")
    assert link.target == "src/a.py" and link.digest == ""


def test_sources_dir_file_glob(tree: Path) -> None:
    assert _dests(hash_selection(tree, "src")) == [
        ".", "a.py", "b.py", "data.txt", "pkg", "pkg/c.py"
    ]  # fmt: skip
    assert _dests(hash_selection(tree, "./src/a.py")) == ["a.py"]
    assert _dests(hash_selection(tree, "src/*.py")) == ["a.py", "b.py"]
    assert _dests(hash_selection(tree, "/src/*/c.py")) == ["c.py"]
    assert _dests(hash_selection(tree, "src", ignore=["src/pkg", "**/*.txt"])) == [
        ".", "a.py", "b.py"
    ]  # fmt: skip


def test_bad_sources_are_named(tree: Path) -> None:
    with pytest.raises(ContextError, match="outside the build context"):
        hash_selection(tree, "../etc/passwd")
    with pytest.raises(ContextError, match=r"nope\.txt is not in the build context"):
        hash_selection(tree, "nope.txt")
    with pytest.raises(ContextError, match="excluded by the ignore rules"):
        hash_selection(tree, "build/out.o")
    with pytest.raises(ContextError, match="matches no file"):
        hash_selection(tree, "src/*.rs")


def test_digest_ignores_mtime_owner_and_location(tree: Path, tmp_path: Path) -> None:
    first = hash_selection(tree).digest
    copy = tmp_path / "elsewhere"
    shutil.copytree(tree, copy, symlinks=True)
    os.utime(copy / "app.py", (OLD + 99, OLD + 99))
    assert hash_selection(copy).digest == first


@pytest.mark.parametrize(
    "change",
    [
        lambda root: (root / "app.py").write_text("print('changed')\n"),
        lambda root: (root / "app.py").chmod(0o755),
        lambda root: (root / "new.txt").write_text(""),
        lambda root: (root / "src/b.py").unlink(),
        lambda root: ((root / "link").unlink(), (root / "link").symlink_to("src/b.py")),
        lambda root: (root / "src/b.py").rename(root / "src/bb.py"),
    ],
    ids=["content", "mode", "added", "removed", "symlink-target", "renamed"],
)
def test_digest_covers_content_mode_names_and_links(tree: Path, change: object) -> None:
    before = hash_selection(tree).digest
    assert callable(change)
    change(tree)
    assert hash_selection(tree).digest != before


def test_excluded_change_does_not_change_digest(tree: Path) -> None:
    before = hash_selection(tree).digest
    (tree / "build/out.o").write_text("rebuilt\n")
    (tree / ".git/HEAD").write_text("other\n")
    assert hash_selection(tree).digest == before


def _big_tree(root: Path, count: int = 300) -> None:
    for i in range(count):
        path = root / f"d{i % 10}" / f"f{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"file {i}\n" * 50)
    _age(root)


def test_warm_hash_reads_no_content_and_touch_rehashes_one(
    tmp_path: Path, envkit_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "big"
    _big_tree(root)
    calls: list[Path] = []
    real = ctx.hash_file

    def counting(path: Path) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(ctx, "hash_file", counting)
    cold = hash_selection(root)
    assert len(calls) == 300 and cold.hashed == 300
    calls.clear()
    warm = hash_selection(root)
    assert calls == [] and warm.hashed == 0
    assert warm.digest == cold.digest

    target = root / "d3" / "f13.txt"
    target.write_text("edited\n")
    os.utime(target, (OLD + 5, OLD + 5))
    again = hash_selection(root)
    assert calls == [target]
    assert again.digest != cold.digest


def test_racily_clean_entries_are_rehashed_once(tree: Path, envkit_home: Path) -> None:
    hasher = ContextHasher(tree)
    hasher.select(".")
    hasher.save()
    assert hasher.index is not None
    # An index written in the same clock tick as the files' last change: their stat
    # cannot prove they did not change after hashing, so they are hashed again...
    os.utime(hasher.index.path, (OLD, OLD))
    assert hash_selection(tree).hashed == 7
    # ...and the index rewritten then trusts them.
    assert hash_selection(tree).hashed == 0


def test_index_is_keyed_by_context_and_survives_damage(tree: Path, envkit_home: Path) -> None:
    hasher = ContextHasher(tree)
    hasher.select(".")
    hasher.save()
    assert hasher.index is not None
    index = hasher.index.path
    assert index.parent == envkit_home / "cache" / "context"
    assert index.exists()
    index.write_text("{not json")
    assert hash_selection(tree).hashed == 7
    assert hash_selection(tree).hashed == 0


def test_no_index_mode_writes_nothing(tree: Path, envkit_home: Path) -> None:
    sel = hash_selection(tree, use_index=False)
    assert sel.hashed == 7
    assert not (envkit_home / "cache").exists()


def test_special_files_are_refused(tmp_path: Path, envkit_home: Path) -> None:
    root = tmp_path / "fifo"
    root.mkdir()
    os.mkfifo(root / "pipe")
    with pytest.raises(ContextError, match="not a regular file"):
        hash_selection(root)
