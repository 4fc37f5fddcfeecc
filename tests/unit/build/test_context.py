"""Context hashing: source selection, ignore rules, reproducible digests, the stat index."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from envkit.build import context as ctx
from envkit.build.context import ContextHasher, hash_selection
from envkit.errors import ContextError

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
        ".", ".dockerignore", "app.py", "build", "build/keep.txt", "link",
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


@pytest.mark.parametrize("link", ["absolute", "relative"])
@pytest.mark.parametrize("source", ["keys/id_rsa", "keys/*", "keys/*/../id_rsa", "keys/./"])
def test_a_symlinked_directory_never_leads_out_of_the_context(
    tree: Path, tmp_path: Path, link: str, source: str
) -> None:
    """A repository's ``keys -> /home/me/.ssh`` with ``COPY keys/* /k/`` (or
    ``keys/id_rsa``): the link is resolved inside the context, as BuildKit resolves it
    (an absolute target from the context root), so no host file outside the context is
    read; it used to copy the host's file into the image."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "id_rsa").write_text("HOST SECRET\n")
    target = str(outside) if link == "absolute" else os.path.relpath(outside, tree)
    (tree / "keys").symlink_to(target)
    try:
        sel = hash_selection(tree, source)
    except ContextError:
        return  # refused: as BuildKit's "not found"
    read = [e for e in sel.entries if e.kind == "file"]
    assert read == [], f"read from outside the context: {[e.path for e in read]}"


def test_a_symlinked_directory_inside_the_context_still_works(tree: Path) -> None:
    (tree / "alias").symlink_to("src")  # relative, inside the context
    (tree / "rooted").symlink_to("/src")  # absolute: taken from the context root
    assert _dests(hash_selection(tree, "alias/a.py")) == ["a.py"]
    assert _dests(hash_selection(tree, "rooted/*.py")) == ["a.py", "b.py"]
    entry = hash_selection(tree, "alias/a.py").entries[0]
    assert entry.path == "src/a.py"


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
    real = ctx.keep_file

    def counting(path: str, snapshot: str) -> str:
        calls.append(Path(path))
        return real(path, snapshot)

    monkeypatch.setattr(ctx, "keep_file", counting)
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


# -- Docker's context semantics: the context as read when the build started ------------


def test_a_file_changed_after_planning_is_built_as_it_was_read(tree: Path) -> None:
    from envkit.build.copy_step import from_context
    from envkit.spec import steps

    log = tree / "build.log"
    log.write_text("line 1\n")
    planned = hash_selection(tree)
    with log.open("a") as out:  # what `envkit build > build.log` does meanwhile
        out.write("line 2\n")
    step = steps.Copy(".", "/app/")
    selection = from_context(step, tree, planned.digest)
    assert selection == planned
    entry = next(e for e in selection.entries if e.path == "build.log")
    source = Path(selection.content_path(entry, tree))
    assert source != log and source.read_text() == "line 1\n"
    assert os.stat(source).st_ino != os.stat(log).st_ino  # a copy, never a hard link
    assert os.stat(source).st_nlink == 1


def test_a_copy_from_another_process_still_checks_the_context(tree: Path) -> None:
    from envkit.build.copy_step import from_context
    from envkit.errors import BuildError
    from envkit.spec import steps

    planned = hash_selection(tree)
    ctx._PLANNED.clear()  # as in a process that did not plan this build
    assert from_context(steps.Copy(".", "/app/"), tree, planned.digest).digest == planned.digest
    (tree / "app.py").write_text("changed\n")
    ctx._PLANNED.clear()
    with pytest.raises(BuildError, match="changed while the image was built"):
        from_context(steps.Copy(".", "/app/"), tree, planned.digest)


def test_snapshot_blobs_are_shared_and_unreferenced_ones_expire(tree: Path) -> None:
    first = hash_selection(tree)
    snapshot = Path(first.snapshot)
    blobs = set(os.listdir(snapshot))
    assert {e.digest.removeprefix("sha256:") for e in first.entries if e.digest} == blobs
    (tree / "app.py").write_text("version 2\n")
    hash_selection(tree)
    assert blobs <= set(os.listdir(snapshot))  # nothing removed within the grace period
    stale = [n for n in os.listdir(snapshot) if n not in _referenced(tree)]
    assert len(stale) == 1  # the old app.py, kept for the grace period
    os.utime(snapshot / stale[0], (OLD, OLD))
    (tree / "src/a.py").write_text("a = 2\n")
    hash_selection(tree)
    assert not (snapshot / stale[0]).exists()


def _referenced(tree: Path) -> set[str]:
    return {e.digest.removeprefix("sha256:") for e in hash_selection(tree).entries if e.digest}


def test_the_envkit_home_is_never_part_of_a_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _tree(tmp_path / "project")
    home = project / "envkit-home"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("ENVKIT_HOME", str(home))
    (home / "store").mkdir()
    (home / "store" / "blob").write_text("store content\n")
    sel = hash_selection(project)
    assert not any(e.path.startswith("envkit-home") for e in sel.entries)
    assert hash_selection(project).digest == sel.digest  # the index written there: no change
    with pytest.raises(ContextError, match=r"envkit store \(ENVKIT_HOME\)"):
        hash_selection(project, "envkit-home/store")
    with pytest.raises(ContextError, match="matches no file"):
        hash_selection(project, "envkit-*")


def test_an_excluded_directory_with_reincluded_files_is_selected_with_its_mode(
    tmp_path: Path, envkit_home: Path
) -> None:
    root = tmp_path / "ctx"
    (root / "foo").mkdir(parents=True)
    (root / "foo" / "bar1").write_text("1\n")
    (root / "foo" / "bar2").write_text("2\n")
    (root / "fooz").mkdir()
    (root / "fooz" / "x").write_text("x\n")
    os.chmod(root / "foo", 0o750)
    (root / ".dockerignore").write_text("foo*\n!foo/bar2\n")
    _age(root)
    sel = hash_selection(root)
    assert _dests(sel) == [".", ".dockerignore", "foo", "foo/bar2"]
    foo = next(e for e in sel.entries if e.path == "foo")
    assert foo.kind == "dir" and foo.mode == 0o750


def test_the_dockerfile_ignore_file_applies_to_its_copies(tree: Path) -> None:
    dockerfile = tree / "app.Dockerfile"
    dockerfile.write_text("FROM scratch\nCOPY . /\n")
    (tree / "app.Dockerfile.dockerignore").write_text("src\n.git\n")
    hasher = ContextHasher(tree, dockerfile=dockerfile)
    dests = _dests(hasher.select("."))
    assert "src/a.py" not in dests
    assert "build/out.o" in dests  # .dockerignore is not read beside it
    assert "src/a.py" in _dests(ContextHasher(tree).select("."))


def test_a_dockerfile_build_plans_with_its_own_ignore_file(tree: Path) -> None:
    from envkit import Image
    from envkit.build.keys import plan

    (tree / "docker").mkdir()
    dockerfile = tree / "docker" / "app.Dockerfile"
    dockerfile.write_text("FROM scratch\nCOPY . /app/\n")
    image = Image.from_dockerfile("docker/app.Dockerfile", ".")

    def copy_inputs() -> str | None:
        steps = plan(image, tree).final.steps
        return next(s.inputs for s in steps if s.op == "copy")

    before = copy_inputs()
    (tree / "build" / "out.o").write_text("rebuilt\n")  # excluded by .dockerignore only
    assert copy_inputs() == before
    (tree / "docker" / "app.Dockerfile.dockerignore").write_text("secret.env\n")
    (tree / "secret.env").write_text("TOKEN=1\n")
    with_own = copy_inputs()
    (tree / "secret.env").write_text("TOKEN=2\n")
    assert copy_inputs() == with_own  # excluded by the Dockerfile's ignore file
    (tree / "build" / "out.o").write_text("rebuilt again\n")
    assert copy_inputs() != with_own  # .dockerignore is no longer read
