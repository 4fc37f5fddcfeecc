"""Dockerfile import: instructions to canonical step forms, and errors with line numbers."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import pytest

from envkit import Image, Secret
from envkit.build.dockerfile import _platform_args, expand, import_dockerfile, parse_dockerfile
from envkit.build.dockerfile_lex import expand_word, expand_words, parse_duration
from envkit.build.dockerfile_steps import AddArchive, WriteFile
from envkit.errors import SpecError

SH = ["/bin/sh", "-c"]


def _parse(tmp_path: Path, text: str, **kw: Any) -> Image:
    (tmp_path / "Dockerfile").write_text(text)
    return parse_dockerfile(tmp_path / "Dockerfile", tmp_path, **kw)


def _steps(image: Image) -> list[dict[str, Any]]:
    return [s.canonical() for s in image.steps]


def _run(argv: list[str], **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "op": "run",
        "argv": argv,
        "secrets": [],
        "caches": {},
        "network": None,
        "env": {},
    }
    return {**body, **kw}


def _copy(src: str, dst: str, **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "op": "copy",
        "src": src,
        "dst": dst,
        "from": None,
        "ignore": [],
        "chown": None,
    }
    return {**body, "chmod": None, **kw}


TABLE = [
    ("FROM busybox\nRUN echo hi", [_run([*SH, "echo hi"])]),
    ('FROM busybox\nRUN ["echo", "hi"]', [_run(["echo", "hi"])]),
    ("FROM busybox\nRUN echo a \\\n  # comment\n    && echo b", [
        _run([*SH, "echo a     && echo b"]),
    ]),
    ("# escape=`\nFROM busybox\nRUN echo a `\n b", [_run([*SH, "echo a  b"])]),
    ("FROM busybox\nENV A=1 B=\"two words\"", [
        {"op": "env", "values": {"A": "1", "B": "two words"}},
    ]),
    ("FROM busybox\nENV A one two", [{"op": "env", "values": {"A": "one two"}}]),
    ("FROM busybox\nENV A=x\nENV B=${A}y C=$A:${A#x} D=${A:+alt}", [
        {"op": "env", "values": {"A": "x"}},
        {"op": "env", "values": {"B": "xy", "C": "x:", "D": "alt"}},
    ]),
    ("FROM busybox\nENV A=x\nWORKDIR /srv/$A\nUSER ${A}", [
        {"op": "env", "values": {"A": "x"}},
        {"op": "workdir", "path": "/srv/x"},
        {"op": "user", "user": "x"},
    ]),
    ("FROM busybox\nEXPOSE 80 53/udp 9000-9001", [
        {"op": "expose", "port": 53, "proto": "udp"},
        {"op": "expose", "port": 80, "proto": "tcp"},
        {"op": "expose", "port": 9000, "proto": "tcp"},
        {"op": "expose", "port": 9001, "proto": "tcp"},
    ]),
    ('FROM busybox\nLABEL a=b "c d"=\'e $f\'', [
        {"op": "label", "values": {"a": "b", "c d": "e $f"}},
    ]),
    ('FROM busybox\nCMD ["app", "-v"]\nENTRYPOINT /init', [
        {"op": "cmd", "argv": ["app", "-v"]},
        {"op": "entrypoint", "argv": [*SH, "/init"]},
    ]),
    ('FROM busybox\nSHELL ["/bin/bash", "-eo", "pipefail", "-c"]\nRUN a | b', [
        _run(["/bin/bash", "-eo", "pipefail", "-c", "a | b"]),
    ]),
    ("FROM busybox\nARG V=1\nRUN echo $V", [_run([*SH, "echo $V"], env={"V": "1"})]),
    ("FROM busybox\nRUN --network=none true", [_run([*SH, "true"], network="none")]),
    ("FROM busybox\nRUN --mount=type=cache,target=/root/.cache/pip pip i", [
        _run([*SH, "pip i"], caches={"/root/.cache/pip": "root_.cache_pip"}),
    ]),
    ("FROM busybox\nRUN --mount=type=cache,target=/var/cache/apt,id=apt,sharing=locked x", [
        _run([*SH, "x"], caches={"/var/cache/apt": "apt"}),
    ]),
    ("FROM busybox\nRUN <<EOF\necho one\necho two\nEOF\n", [_run([*SH, "echo one\necho two\n"])]),
    ("FROM busybox\nRUN python3 <<'PY'\nprint($x)\nPY\n", [
        _run([*SH, "python3 <<'PY'\nprint($x)\nPY"]),
    ]),
    ("FROM busybox\nRUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\n", [
        _run([*SH, "/usr/bin/env python3 <<'EOF'\nprint(1)\nEOF\n"]),
    ]),
    ("FROM busybox\nCOPY a.txt b.txt /dst/", [_copy("a.txt", "/dst/"), _copy("b.txt", "/dst/")]),
    ('FROM busybox\nCOPY --chown=1:2 --chmod=640 ["a.txt", "/x"]', [
        _copy("a.txt", "/x", chown="1:2", chmod="0640"),
    ]),
    ("FROM busybox\nADD a.txt /x", [_copy("a.txt", "/x")]),
    ("FROM busybox\nHEALTHCHECK --interval=1m30s --timeout=5s --retries=2 CMD pg_isready", [
        {"op": "healthcheck", "healthcheck": {
            "v": 1, "kind": "healthcheck", "test": ["CMD-SHELL", "pg_isready"],
            "interval": 90.0, "timeout": 5.0, "retries": 2, "start_period": 0.0,
        }},
    ]),
    # docker 25's --start-interval (the dockerfile reference's HEALTHCHECK options).
    ("FROM busybox\nHEALTHCHECK --start-period=1m --start-interval=50ms CMD pg_isready", [
        {"op": "healthcheck", "healthcheck": {
            "v": 1, "kind": "healthcheck", "test": ["CMD-SHELL", "pg_isready"],
            "interval": 30.0, "timeout": 30.0, "retries": 3, "start_period": 60.0,
            "start_interval": 0.05,
        }},
    ]),
    ("FROM busybox\nHEALTHCHECK NONE", [
        {"op": "healthcheck", "healthcheck": {
            "v": 1, "kind": "healthcheck", "test": ["NONE"],
            "interval": 30.0, "timeout": 30.0, "retries": 3, "start_period": 0.0,
        }},
    ]),
    ("FROM busybox\nMAINTAINER me@example.org", [
        {"op": "maintainer", "author": "me@example.org"},
    ]),
    ("FROM busybox\nVOLUME /data /logs\nVOLUME [\"/x\"]\nSTOPSIGNAL SIGQUIT", [
        {"op": "volume", "paths": ["/data", "/logs"]},
        {"op": "volume", "paths": ["/x"]},
        {"op": "stopsignal", "signal": "SIGQUIT"},
    ]),
    ("FROM busybox\nLABEL maintainer James \"j@example.com\"", [
        {"op": "label", "values": {"maintainer": "James j@example.com"}},
    ]),
    ("FROM busybox\nENV\tNAME\tvalue", [{"op": "env", "values": {"NAME": "value"}}]),
    ("FROM busybox\nRUN echo a\\\\\nRUN echo b", [
        _run([*SH, "echo a\\\\"]), _run([*SH, "echo b"]),
    ]),
]  # fmt: skip


@pytest.mark.parametrize(("text", "steps"), TABLE, ids=[t[0].split("\n")[-1] for t in TABLE])
def test_instruction_table(tmp_path: Path, text: str, steps: list[dict[str, Any]]) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    (tmp_path / "b.txt").write_text("b\n")
    image = _parse(tmp_path, text)
    assert image.base == Image.from_("busybox").base
    assert _steps(image) == steps


def test_global_args_build_args_and_stages(tmp_path: Path) -> None:
    text = (
        "ARG BASE=busybox\nARG TAG=1\n"
        "FROM ${BASE}:${TAG} AS build\nARG TAG\nRUN make $TAG\n"
        "FROM build AS test\nRUN test\n"
        "FROM scratch\nCOPY --from=build /out /out\nCOPY --from=0 /x /x\n"
    )
    image = _parse(tmp_path, text, build_args={"TAG": "2"})
    assert image.base == Image.scratch().base
    build = Image.from_("busybox:2").run("make $TAG", env={"TAG": "2"})
    assert image.steps[0].canonical()["from"] == build.canonical()
    assert image.steps[1].canonical()["from"] == build.canonical()
    test_stage = _parse(tmp_path, text, build_args={"TAG": "2"}, target="test")
    assert test_stage == build.run("test")


def test_env_overrides_arg_and_stage_inherits_env(tmp_path: Path) -> None:
    image = _parse(tmp_path, "FROM busybox AS a\nENV X=env\nARG X=arg\nFROM a\nWORKDIR /$X\n")
    assert image.steps[-1].canonical() == {"op": "workdir", "path": "/env"}


def test_secret_mounts(tmp_path: Path) -> None:
    text = (
        "FROM busybox\n"
        "RUN --mount=type=secret,id=token,required=true cat /run/secrets/token\n"
        "RUN --mount=type=secret,id=npm,target=/run/secrets/npmrc cat /run/secrets/npmrc\n"
    )
    given = {"token": Secret.from_file("./token.txt", name="ignored")}
    image = _parse(tmp_path, text, secrets=given)
    assert image.secrets == (
        Secret("npmrc", source="env:npm", required=False),
        Secret("token", source="file:./token.txt", required=True),
    )


def test_add_local_archive_is_extracted_and_heredoc_copy_writes_a_file(tmp_path: Path) -> None:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        info = tarfile.TarInfo("x")
        tar.addfile(info, io.BytesIO(b""))
    (tmp_path / "vendor.tgz").write_bytes(data.getvalue())
    (tmp_path / "plain.gz.txt").write_text("not an archive\n")
    text = (
        "FROM busybox\nENV WHO=world\n"
        "ADD vendor.tgz plain.gz.txt /opt/\n"
        "COPY --chmod=600 <<EOF /etc/greeting\nhello ${WHO}\nEOF\n"
        "COPY <<'EOF' /etc/raw\n$WHO\nEOF\n"
    )
    image = _parse(tmp_path, text)
    add, plain, greeting, raw = image.steps[1:]
    assert isinstance(add, AddArchive) and add.src == "vendor.tgz"
    assert not isinstance(plain, AddArchive)
    assert isinstance(greeting, WriteFile) and greeting.content == "hello world\n"
    assert greeting.canonical()["chmod"] == "0600" and greeting.dst == "/etc/greeting"
    assert isinstance(raw, WriteFile) and raw.content == "$WHO\n"


ERRORS = [
    ("FROM busybox\nONBUILD RUN x", 2, "ONBUILD: not supported"),
    ("FROM busybox\n\nSTOPSIGNAL SIGNOPE", 3, "invalid signal: SIGNOPE"),
    ("FROM busybox\nVOLUME", 2, "VOLUME requires at least one argument"),
    ("FROM busybox\nENV PATH", 2, "ENV must have two arguments"),
    ("FROM busybox\nMAINTAINER --boo x", 2, "unknown flag: --boo"),
    ("FROM busybox\nEXPOSE", 2, "EXPOSE requires at least one argument"),
    ('FROM busybox\nCMD [ "echo", [ "nested json" ] ]', 2, "arrays must be comprised of strings"),
    ("FROM busybox\nADD https://example.org/x.tgz /x", 2, "URL"),
    ("FROM busybox\nRUN --mount=type=bind,from=build,target=/s make", 2, "from= is not"),
    ("FROM busybox\nRUN --mount=type=bind,source=. make", 2, "needs target="),
    ("FROM busybox\nRUN --mount=type=tmpfs,target=/t make", 2, "type=tmpfs is not"),
    ("FROM busybox\nRUN --mount=type=secret,id=t,env=T make", 2, "env="),
    ("FROM busybox\nRUN --mount=type=secret,id=t,target=/etc/t make", 2, "outside /run/secrets"),
    ("FROM busybox\nRUN --mount=type=cache,target=/c,uid=1 make", 2, "uid="),
    ("FROM busybox\nCOPY --exclude=*.md . /", 2, "--exclude is not supported"),
    ("FROM --platform=linux/s390x busybox", 1, "envkit builds for the host platform"),
    ("ARG P=windows/amd64\nFROM --platform=$P busybox", 2, "--platform=windows/amd64"),
    ("RUN true", 1, "before the first FROM"),
    ("FROM busybox\nFROBNICATE", 2, "unknown instruction"),
    ("FROM busybox\nCOPY a b c", 2, "must end with /"),
    ("FROM busybox\nEXPOSE 99999", 2, "port"),
    ("FROM busybox\nRUN <<EOF\nno end", 2, "unterminated heredoc"),
    ('FROM scratch\nENV A="${B:?B is required}"', 2, "B is required"),
    ("FROM busybox\nENV A=${B:?B is required}", 2, 'can\'t find = in "is"'),
    ("FROM busybox\nHEALTHCHECK --interval=soon CMD true", 2, "invalid duration"),
    ("FROM busybox\nHEALTHCHECK --start-interval=0.5ms CMD true", 2, "cannot be less than 1ms"),
    ("FROM busybox\nUSER 'bad user'", 2, "invalid user"),
    ("# escape=x\nFROM busybox", 1, "invalid escape"),
    ("", 1, "file with no instructions"),
    ("ARG X=1", 1, "no FROM"),
]


@pytest.mark.parametrize(("text", "line", "message"), ERRORS)
def test_errors_name_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        _parse(tmp_path, text)
    assert caught.value.field == f"{tmp_path / 'Dockerfile'}:{line}"
    assert message in str(caught.value)


def test_expand_replaces_a_dockerfile_base(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN make\n")
    builder = Image.from_dockerfile("Dockerfile", context=".").env(A="1")
    image = Image.scratch().copy("/out", "/out", from_=builder)
    expanded = expand(image, tmp_path)
    assert expanded.steps[0].canonical()["from"] == (
        Image.from_("busybox").run("make").env(A="1").canonical()
    )
    assert expand(Image.from_("busybox"), tmp_path) == Image.from_("busybox")


def test_lexer_words_quotes_and_escapes() -> None:
    env = {"A": "x y", "E": ""}
    assert expand_words("a 'b c' \"$A\" d\\ e", env) == ["a", "b c", "x y", "d e"]
    assert expand_word("${E:-dflt}|${E-dflt}|${E:+set}|${E+set}|$$|\\$A", env) == ("dflt|||set||$A")
    assert expand_word("`$A", env, escape="`") == "$A"


def test_durations() -> None:
    assert parse_duration("1h2m3.5s") == 3723.5
    assert parse_duration("250ms") == 0.25
    with pytest.raises(ValueError):
        parse_duration("10")


# (FROM line, whether BuildKit's FromPlatformFlagConstDisallowed lint warns); the host of
# these tests is linux/amd64 (the machine the suite runs on)
HOST_PLATFORMS = [
    ("FROM --platform=$BUILDPLATFORM busybox", False),
    ("FROM --platform=${TARGETPLATFORM} busybox AS build", False),
    ("FROM --platform=$TARGETOS/$TARGETARCH busybox", False),
    ("FROM --platform=linux/amd64 busybox", True),
    ("FROM --platform=linux/x86_64 busybox", True),
    ("FROM --platform=linux/amd64/v1 busybox", True),
    ("FROM --platform=amd64 busybox", True),
    ("FROM --platform=linux/amd64 busybox AS build_amd64", False),  # the lint's opt-out
]


@pytest.mark.parametrize(("text", "lint"), HOST_PLATFORMS)
def test_from_platform_naming_the_host_is_accepted(
    tmp_path: Path, text: str, lint: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """awesome-compose's ``FROM --platform=$BUILDPLATFORM python AS builder``: the
    platform args are in the global scope, and the host's platform builds as without
    the flag."""
    if _platform_args()["TARGETPLATFORM"] != "linux/amd64":
        pytest.skip("the table is written for a linux/amd64 host")
    (tmp_path / "Dockerfile").write_text(text + "\nRUN true\n")
    imported = import_dockerfile(tmp_path / "Dockerfile", tmp_path)
    assert imported.image.base == Image.from_("busybox").base
    warned = [w for w in imported.warnings if w.startswith("FromPlatformFlagConstDisallowed")]
    assert bool(warned) == lint, imported.warnings


def test_platform_args_expand_in_the_base_name_without_an_arg(tmp_path: Path) -> None:
    image = _parse(tmp_path, "FROM busybox:$TARGETOS-$TARGETARCH\n")
    arch = _platform_args()["TARGETARCH"]
    assert image.base == Image.from_(f"busybox:linux-{arch}").base


def test_run_mount_bind_is_a_bind_of_the_build_context(tmp_path: Path) -> None:
    """``docker init``'s templates: ``--mount=type=bind,source=F,target=F`` and
    ``--mount=type=bind,target=.`` (the whole context); ``rw`` is accepted (writes are
    discarded) and a mount without ``type=`` is a bind, as BuildKit's default."""
    image = _parse(
        tmp_path,
        "FROM busybox\nWORKDIR /app\n"
        "RUN --mount=type=bind,source=requirements.txt,target=requirements.txt \\\n"
        "    --mount=type=cache,target=/root/.cache/pip pip install -r requirements.txt\n"
        "RUN --mount=target=.,rw go build\n",
    )
    runs = [s for s in image.steps if s.canonical()["op"] == "run"]
    assert runs[0].canonical()["binds"] == {"requirements.txt": "requirements.txt"}
    assert runs[0].canonical()["caches"] == {"/root/.cache/pip": "root_.cache_pip"}
    assert runs[1].canonical()["binds"] == {".": "."}
    plain = _parse(tmp_path, "FROM busybox\nRUN true\n")
    assert "binds" not in plain.steps[0].canonical()  # its key stays what it was
