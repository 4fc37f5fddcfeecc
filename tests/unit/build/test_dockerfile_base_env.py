"""Variables a Dockerfile does not define are the base image's, expanded at build time.

BuildKit expands ``$VAR`` against the base image's config ``Env`` (``PATH`` defaulted)
and then the Dockerfile's ARG/ENV in order; the import keeps such words for the build.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from envkit import Image
from envkit.build.dockerfile import import_dockerfile, parse_dockerfile
from envkit.build.dockerfile_expand import DEFAULT_PATH, resolve
from envkit.build.dockerfile_steps import ExpandConfig, ExpandCopy, ExpandWriteFile, WriteFile
from envkit.build.executor import config_change, describe
from envkit.build.image_state import ImageState
from envkit.errors import BuildError, SpecError
from envkit.spec import steps as st

BASE_PATH = "/usr/local/bin:/usr/bin:/bin"


def _parse(tmp_path: Path, text: str, **kw: Any) -> Image:
    (tmp_path / "Dockerfile").write_text(text)
    return parse_dockerfile(tmp_path / "Dockerfile", tmp_path, **kw)


def _config(image: Image, env: list[str] | None) -> dict[str, Any]:
    """The config a build of ``image``'s config steps on a base with ``env`` gives."""
    settings: dict[str, Any] = {} if env is None else {"Env": env}
    state = ImageState((), {"config": settings})
    for step in image.steps:
        state = state.with_settings(config_change(step, state), describe(step))
    return state.settings


def _env(settings: dict[str, Any]) -> dict[str, str]:
    return dict(item.partition("=")[::2] for item in settings.get("Env", []))


@pytest.mark.parametrize(
    "line",
    [
        "ENV PATH=/opt/venv/bin:$PATH",
        "ENV PATH /opt/venv/bin:$PATH",
        "ENV\tPATH\t/opt/venv/bin:${PATH}",
    ],
)
def test_path_keeps_the_base_images_path(tmp_path: Path, line: str) -> None:
    image = _parse(tmp_path, f"FROM busybox\n{line}\n")
    assert isinstance(image.steps[0], ExpandConfig)
    settings = _config(image, [f"PATH={BASE_PATH}", "HOME=/root"])
    assert _env(settings)["PATH"] == f"/opt/venv/bin:{BASE_PATH}"
    assert describe(image.steps[0]) == "ENV PATH=/opt/venv/bin:$PATH" or "${PATH}" in describe(
        image.steps[0]
    )


def test_a_base_without_path_gets_buildkits_default(tmp_path: Path) -> None:
    image = _parse(tmp_path, "FROM busybox\nENV PATH=/x:$PATH\n")
    assert _env(_config(image, None))["PATH"] == f"/x:{DEFAULT_PATH}"
    scratch = _parse(tmp_path, "FROM scratch\nENV PATH=/x:$PATH\n")
    assert scratch.steps[0].canonical() == {"op": "env", "values": {"PATH": f"/x:{DEFAULT_PATH}"}}


def test_later_words_see_the_resolved_value_and_args_in_force(tmp_path: Path) -> None:
    text = (
        "FROM busybox\nARG HOME=/arg-home\nENV PATH=/a:$PATH\n"
        "ENV B=$PATH C=$HOME D=$LANG\nWORKDIR $HOME/$LANG\n"
    )
    image = _parse(tmp_path, text)
    assert all(isinstance(s, ExpandConfig) for s in image.steps)
    settings = _config(image, ["PATH=/bin", "HOME=/root", "LANG=C.UTF-8"])
    env = _env(settings)
    assert env["B"] == "/a:/bin" and env["C"] == "/arg-home" and env["D"] == "C.UTF-8"
    assert settings["WorkingDir"] == "/arg-home/C.UTF-8"


def test_words_the_dockerfile_defines_are_expanded_at_import(tmp_path: Path) -> None:
    image = _parse(tmp_path, "FROM busybox\nENV APP=/srv\nWORKDIR $APP\nUSER ${APP#/}")
    assert [s.canonical() for s in image.steps][1:] == [
        {"op": "workdir", "path": "/srv"},
        {"op": "user", "user": "srv"},
    ]


def test_a_later_stage_inherits_env_from_its_parent_stage(tmp_path: Path) -> None:
    text = "FROM busybox AS base\nENV PATH=/venv/bin:$PATH\nFROM base\nENV X=$PATH\n"
    image = _parse(tmp_path, text)
    settings = _config(image, [f"PATH={BASE_PATH}"])
    assert _env(settings)["X"] == f"/venv/bin:{BASE_PATH}"


def test_copy_destination_owner_and_heredoc_resolve_at_build_time(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("print()\n")
    text = (
        "FROM busybox\nCOPY --chown=$APP_USER app.py $APP_HOME/\n"
        "COPY <<EOF $APP_HOME/greeting\nhello $APP_USER\nEOF\n"
    )
    image = _parse(tmp_path, text)
    copy, write = image.steps
    assert isinstance(copy, ExpandCopy) and isinstance(write, ExpandWriteFile)
    settings = {"Env": ["APP_HOME=/srv/app", "APP_USER=1000"]}
    (made,) = resolve(copy, settings)
    assert type(made) is st.Copy
    assert (made.src, made.dst, made.chown) == ("app.py", "/srv/app/", "1000")
    (doc,) = resolve(write, settings)
    assert isinstance(doc, WriteFile)
    assert (doc.dst, doc.content) == ("/srv/app/greeting", "hello 1000\n")
    assert describe(copy) == "COPY --chown=$APP_USER app.py $APP_HOME/"


def test_a_bad_word_fails_the_build_step_with_the_instruction(tmp_path: Path) -> None:
    image = _parse(tmp_path, 'FROM busybox\nENV A="${UNSET:?must be set}"\n')
    with pytest.raises(BuildError, match="must be set"):
        resolve(image.steps[0], {"Env": []})


def test_a_copy_source_must_be_known_when_the_dockerfile_is_read(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="names a variable the Dockerfile does not define"):
        _parse(tmp_path, "FROM busybox\nCOPY $SRC /dst/\n")


def test_copy_sources_are_single_words_as_in_buildkit(tmp_path: Path) -> None:
    # dockerfile2llb expands each COPY source with ProcessWord (one word), never splits it
    (tmp_path / "a b").write_text("x")
    image = _parse(tmp_path, 'FROM busybox\nARG FILES="a b"\nCOPY $FILES /dst/\n')
    assert [s.canonical()["src"] for s in image.steps] == ["a b"]


def test_expose_words_are_split_after_expansion(tmp_path: Path) -> None:
    image = _parse(tmp_path, 'FROM busybox\nARG PORTS="80 443"\nEXPOSE $PORTS\n')
    assert [s.canonical()["port"] for s in image.steps] == [80, 443]


HEREDOCS = [
    ('FROM busybox\nRUN "<<EOF"\nRUN true\n', ['"<<EOF"', "true"]),
    ('FROM busybox\nRUN ["<<EOF"]\nRUN true\n', None),
    ('FROM busybox\nRUN echo "<<EOF"\nRUN true\nEOF\n', None),
    ("FROM busybox\nRUN <<eo'f'\necho $HOME\neof\n", ["echo $HOME\n"]),
    ("FROM busybox\nRUN <<'one two'\necho bar\none two\n", ["echo bar\n"]),
    ("FROM busybox\nRUN <<-EOF\n\techo tab\n\tEOF\n", ["echo tab\n"]),
    ("FROM busybox\nRUN cat << -EOF\nx\n-EOF\n", ["cat << -EOF\nx\n-EOF"]),
]


def test_heredocs_as_buildkit_reads_them(tmp_path: Path) -> None:
    ok = _parse(tmp_path, HEREDOCS[0][0])
    assert [s.canonical()["argv"][-1] for s in ok.steps] == HEREDOCS[0][1]
    json_form = _parse(tmp_path, HEREDOCS[1][0])
    assert [s.canonical()["argv"] for s in json_form.steps] == [
        ["<<EOF"],
        ["/bin/sh", "-c", "true"],
    ]
    with pytest.raises(SpecError, match=r":4: unknown instruction: EOF"):
        _parse(tmp_path, HEREDOCS[2][0])
    for text, expected in HEREDOCS[3:]:
        image = _parse(tmp_path, text)
        assert [s.canonical()["argv"][-1] for s in image.steps] == expected, text


def test_copy_heredoc_named_like_a_file(tmp_path: Path) -> None:
    image = _parse(tmp_path, "FROM busybox\nCOPY <<file.txt /dest/\nhello\nfile.txt\n")
    (step,) = image.steps
    assert isinstance(step, WriteFile) and (step.dst, step.content) == ("/dest/file.txt", "hello\n")


def test_warnings_in_dockers_words(tmp_path: Path) -> None:
    text = (
        "FROM busybox as Build\nMAINTAINER me\nENV A 1\nLABEL a b\nCMD run\nCMD again\n"
        "WORKDIR rel\nRUN a \\\n\n  b\n"
    )
    (tmp_path / "Dockerfile").write_text(text)
    found = import_dockerfile(tmp_path / "Dockerfile", tmp_path)
    rules = [w.split(":")[0] for w in found.warnings]
    assert rules == [
        "NoEmptyContinuation",
        "StageNameCasing",
        "FromAsCasing",
        "MaintainerDeprecated",
        "LegacyKeyValueFormat",
        "LegacyKeyValueFormat",
        "JSONArgsRecommended",
        "MultipleInstructionsDisallowed",
        "JSONArgsRecommended",
        "WorkdirRelativePath",
    ]
    assert found.stages.keys() == {"build"}
    assert 'LegacyKeyValueFormat: "ENV key=value" should be used' in found.warnings[4]
