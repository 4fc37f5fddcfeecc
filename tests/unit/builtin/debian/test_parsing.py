"""Control data, versions, relations, the Packages index, Release files and apt sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from envkit.builtin.debian.control import multiline, paragraphs
from envkit.builtin.debian.mirror import apt_mirrors, choose_mirror
from envkit.builtin.debian.packages import (
    PackageIndex,
    Relation,
    package_from_json,
    package_to_json,
    parse_relations,
)
from envkit.builtin.debian.release import Release
from envkit.builtin.debian.version import compare, satisfies
from envkit.errors import MirrorError
from tests.unit.builtin.debian.fixtures import release_text, stanza


def test_paragraphs_keep_continuations_and_split_on_blank_lines() -> None:
    text = "A: 1\nB: first\n second\n .\n\nA: 2\n"
    got = list(paragraphs(text))
    assert got == [{"A": "1", "B": "first\nsecond\n."}, {"A": "2"}]
    assert multiline("\n x 1 a\n y 2 b") == ["x 1 a", "y 2 b"]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("1.0", "1.0", 0),
        ("1.0", "1.1", -1),
        ("1.10", "1.9", 1),
        ("1.0~rc1", "1.0", -1),
        ("1:0.1", "9.9", 1),
        ("2.36-9+deb12u4", "2.36-9", 1),
        ("1.0a", "1.0+", -1),
        ("1.0-1", "1.0", 1),
        ("0.5.12-2", "0.5.12-2", 0),
    ],
)
def test_version_order_follows_dpkg(a: str, b: str, expected: int) -> None:
    assert compare(a, b) == expected
    assert compare(b, a) == -expected


def test_satisfies_every_operator() -> None:
    assert satisfies("2.36", ">=", "2.34") and not satisfies("2.33", ">=", "2.34")
    assert satisfies("1.0", "<<", "1.1") and not satisfies("1.1", "<<", "1.1")
    assert satisfies("1.2", ">>", "1.1") and satisfies("1.1", "<=", "1.1")
    assert satisfies("1:1", "=", "1:1") and not satisfies("1", "=", "1:1")


def test_relations_alternatives_qualifiers_and_versions() -> None:
    got = parse_relations("libc6 (>= 2.34), awk | mawk:any, python3:any (<< 3.12) [amd64]")
    assert got == (
        (Relation("libc6", ">=", "2.34"),),
        (Relation("awk"), Relation("mawk")),
        (Relation("python3", "<<", "3.12"),),
    )


def test_index_keeps_native_and_all_and_records_providers() -> None:
    text = "\n".join(
        [
            stanza("mawk", Provides="awk"),
            stanza("noarch", Architecture="all"),
            stanza("foreign", Architecture="arm64"),
            "Package: broken\nVersion: 1\n",  # no Filename/SHA256: ignored
        ]
    )
    index = PackageIndex.parse(text)
    assert sorted(index.by_name) == ["mawk", "noarch"]
    assert [p.name for p, _ in index.providers["awk"]] == ["mawk"]
    pkg = index.by_name["mawk"][0]
    assert package_from_json(package_to_json(pkg)) == pkg


def test_release_lists_hashes_and_picks_the_xz_index() -> None:
    text = release_text(
        {"main/binary-amd64/Packages": b"a", "main/binary-amd64/Packages.xz": b"bb"}
    ).decode()
    release = Release.parse(text)
    assert release.codename == "testing" and release.architectures == ("amd64",)
    chosen = release.packages_index("main", "amd64")
    assert chosen.path.endswith("Packages.xz") and chosen.size == 2
    assert release.timestamp() == 1686387600
    with pytest.raises(MirrorError, match="binary-arm64"):
        release.packages_index("main", "arm64")


def test_mirror_from_apt_sources_skips_security_and_disabled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ENVKIT_DEBIAN_MIRROR", raising=False)
    monkeypatch.setenv("ENVKIT_HOME", str(tmp_path / "home"))
    parts = tmp_path / "sources.list.d"
    parts.mkdir()
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://sec.example/debian-security "
        "bookworm-security main\n"
    )
    (parts / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\nTypes: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n"
    )
    (parts / "other.list.disabled").write_text("deb http://nope.example/debian bookworm main\n")
    assert apt_mirrors(tmp_path)[0] == ("http://sec.example/debian-security", ["bookworm-security"])
    assert choose_mirror(None, tmp_path) == "http://mirror.example/debian"
    assert choose_mirror("http://given.example/debian/", tmp_path) == "http://given.example/debian"
    monkeypatch.setenv("ENVKIT_DEBIAN_MIRROR", "http://env.example/debian")
    assert choose_mirror(None, tmp_path) == "http://env.example/debian"


def test_no_mirror_anywhere_says_how_to_set_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ENVKIT_DEBIAN_MIRROR", raising=False)
    monkeypatch.setenv("ENVKIT_HOME", str(tmp_path / "home"))
    with pytest.raises(MirrorError) as err:
        choose_mirror(None, tmp_path)
    assert "ENVKIT_DEBIAN_MIRROR" in (err.value.hint or "")
