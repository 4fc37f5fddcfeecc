"""The files a run step's context bind shows (``RUN --mount=type=bind``), written where
the step's private directory is, and never anywhere else."""

from __future__ import annotations

from pathlib import Path

import pytest

from envkit.build.context import ContextHasher
from envkit.build.context_binds import context_binds
from envkit.build.keys import bind_inputs
from envkit.errors import BuildError


def _binds(context: Path, into: Path, binds: list[tuple[str, str]]) -> list[tuple[str, str]]:
    expected = bind_inputs(ContextHasher(context), binds)
    mounts = context_binds(binds, context, expected, into, "/app")
    return [(m.source, m.target) for m in mounts]


def test_a_file_and_a_directory_are_copies_below_the_steps_directory(
    tmp_path: Path, envkit_home: Path
) -> None:
    context = tmp_path / "ctx"
    (context / "src").mkdir(parents=True)
    (context / "src" / "main.go").write_text("package main\n")
    (context / "go.mod").write_text("module x\n")
    (context / "secret.env").write_text("TOKEN=1\n")
    (context / ".dockerignore").write_text("*.env\n")
    into = tmp_path / "step" / "binds"
    shown = _binds(context, into, [("go.mod", "go.mod"), (".", ".")])
    assert shown[0] == (str(into / "0" / "go.mod"), "/app/go.mod")
    assert shown[1] == (str(into / "1" / "src"), "/app")
    assert (into / "0" / "go.mod").read_text() == "module x\n"
    assert (into / "1" / "src" / "src" / "main.go").is_file()
    assert not (into / "1" / "src" / "secret.env").exists()  # the ignore file applies
    (into / "0" / "go.mod").write_text("changed by the step\n")
    assert (context / "go.mod").read_text() == "module x\n"  # a copy, not the file


def test_a_match_below_another_matchs_symlink_is_never_followed(
    tmp_path: Path, envkit_home: Path
) -> None:
    """A glob matching a link ``x -> /outside`` and a directory holding ``x/f``: writing
    ``x/f`` would follow the link out of the step's directory (as root, onto the host)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    context = tmp_path / "ctx"
    (context / "xdir" / "xlink").mkdir(parents=True)
    (context / "xdir" / "xlink" / "f").write_text("f\n")
    (context / "xlink").symlink_to(outside)
    with pytest.raises(BuildError, match="below a symlink"):
        _binds(context, tmp_path / "step" / "binds", [("/mnt", "x*")])
    assert list(outside.iterdir()) == []
