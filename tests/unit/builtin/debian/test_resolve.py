"""Dependency resolution: variants, alternatives, Provides, versions, failures."""

from __future__ import annotations

import pytest

from envkit.builtin.debian.packages import Package, PackageIndex
from envkit.builtin.debian.resolve import resolve, variant_seeds
from envkit.errors import PackageNotFoundError, UnsatisfiableError
from tests.unit.builtin.debian.fixtures import stanza


def index(*stanzas: str) -> PackageIndex:
    return PackageIndex.parse("\n".join(stanzas))


BASE = index(
    stanza("libc6", "2.36"),
    stanza("dash", Essential="yes", Priority="required", Depends="libc6 (>= 2.34)"),
    stanza("mawk", Priority="required", Provides="awk"),
    stanza("gawk", Provides="awk"),
    stanza("apt", Priority="important", Depends="libc6"),
    stanza("tool", Depends="awk, missing-lib | libc6"),
    stanza("mta-a", Provides="mail-transport-agent"),
    stanza("mta-b", Provides="mail-transport-agent"),
    stanza("mailer", Depends="mail-transport-agent"),
    stanza("old", "1.0"),
    stanza("old", "2.0"),
    stanza("needs-new", Depends="old (>= 3.0)"),
    stanza("pre", Pre_Depends="dash"),
)


def names(pkgs: list[Package]) -> list[str]:
    return [f"{p.name}={p.version}" for p in pkgs]


def test_variants_pick_essential_required_and_apt() -> None:
    assert variant_seeds(BASE, "essential") == ["dash"]
    assert variant_seeds(BASE, "minbase") == ["apt", "dash", "mawk"]
    with pytest.raises(PackageNotFoundError, match="variant"):
        variant_seeds(BASE, "nonsense")


def test_dependencies_are_followed_and_the_result_is_sorted() -> None:
    got = resolve(BASE, ["pre"])
    assert names(got) == ["dash=1.0", "libc6=2.36", "pre=1.0"]


def test_alternatives_take_the_first_satisfiable_or_one_already_selected() -> None:
    assert "gawk=1.0" in names(resolve(BASE, [], ["tool"]))  # awk: first provider by name
    got = names(resolve(BASE, ["mawk"], ["tool"]))
    assert "mawk=1.0" in got and "gawk=1.0" not in got  # the selected provider wins
    assert "libc6=2.36" in names(resolve(BASE, [], ["tool"]))  # missing-lib skipped


def test_virtual_package_with_several_providers_is_deterministic() -> None:
    assert names(resolve(BASE, [], ["mailer"])) == ["mailer=1.0", "mta-a=1.0"]


def test_requested_version_and_highest_version_by_default() -> None:
    assert names(resolve(BASE, [], ["old"])) == ["old=2.0"]
    assert names(resolve(BASE, [], ["old=1.0"])) == ["old=1.0"]


def test_unknown_package_and_version_name_what_exists() -> None:
    with pytest.raises(PackageNotFoundError, match="'nope' is not in the index"):
        resolve(BASE, [], ["nope"])
    with pytest.raises(PackageNotFoundError) as err:
        resolve(BASE, [], ["old=9"])
    assert "1.0, 2.0" in err.value.message and "old=2.0" in (err.value.hint or "")


def test_unsatisfiable_dependency_names_the_package_and_the_relation() -> None:
    with pytest.raises(UnsatisfiableError) as err:
        resolve(BASE, [], ["needs-new"])
    assert "needs-new=1.0 depends on old (>= 3.0)" in err.value.message
