"""distribution/reference's own test tables, carried as data, against envkit's references.

The data file names its source; each test names the upstream test whose table it runs.
Go's error values are matched by the words of their message.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from envkit.errors import ReferenceError_
from envkit.oci import reference as ref

DATA = json.loads(
    (
        Path(__file__).parents[2] / "data" / "distribution_reference" / "reference_tests.json"
    ).read_text()
)
#: The words of each Go error value's message.
ERRORS = {
    "ErrNameEmpty": "at least one component",
    "ErrReferenceInvalidFormat": "invalid reference format",
    "ErrNameContainsUppercase": "must be lowercase",
    "ErrNameTooLong": "must not be more than 255 characters",
    "digest.ErrDigestInvalidLength": "invalid checksum digest length",
    "digest.ErrDigestUnsupported": "unsupported digest algorithm",
    "digest.ErrDigestInvalidFormat": "invalid checksum digest format",
}


def _ids(key: str) -> Any:
    return lambda row: str(row.get(key, row))[:60]


def test_source_is_named() -> None:
    assert "distribution/reference" in DATA["source"] and "commit" in DATA["source"]


@pytest.mark.parametrize("row", DATA["TestReferenceParse"], ids=_ids("input"))
def test_reference_parse(row: dict[str, Any]) -> None:
    if "err" in row:
        with pytest.raises(ReferenceError_, match=ERRORS[row["err"]]):
            ref.split(row["input"])
        return
    found = ref.split(row["input"])
    assert found.name == row["repository"]
    assert found.domain == row.get("domain", "")
    assert found.tag == row.get("tag")
    assert found.digest == row.get("digest")


@pytest.mark.parametrize("row", DATA["TestDomainAndPath"], ids=_ids("input"))
def test_domain_and_path(row: dict[str, Any]) -> None:
    found = ref.split(row["input"])
    assert (found.domain, found.path) == (row.get("domain", ""), row["path"])


@pytest.mark.parametrize("row", DATA["TestParseNamed"], ids=_ids("input"))
def test_parse_named(row: dict[str, Any]) -> None:
    """ParseNamed: the input must already be the normalised (canonical) name."""
    named = ref.parse_normalized(row["input"])
    canonical = str(named) == row["input"]
    if "err" in row:
        assert row["err"] == "ErrNameNotCanonical" and not canonical
        return
    assert canonical
    assert (named.registry, named.path) == (row["domain"], row["path"])


@pytest.mark.parametrize("row", DATA["TestWithTag"][:4], ids=_ids("combined"))
def test_with_tag(row: dict[str, Any]) -> None:
    """WithTag on the rows without a digest (envkit's with_tag drops a digest)."""
    tagged = ref.parse_normalized(row["name"]).with_tag(row["tag"])
    assert tagged == ref.parse_normalized(row["combined"])


@pytest.mark.parametrize("row", DATA["TestWithNameFailure"], ids=_ids("input"))
def test_with_name_failure(row: dict[str, Any]) -> None:
    """WithName refuses these as bare names: split refuses them, or finds a tag."""
    try:
        found = ref.split(row["input"])
    except ReferenceError_ as exc:
        if row["err"] == "ErrNameTooLong":
            assert ERRORS[row["err"]] in str(exc)
        return
    assert found.tag is not None or found.digest is not None


@pytest.mark.parametrize(
    ("name", "valid"),
    [(n, True) for n in DATA["TestValidateReferenceName"]["valid"]]
    + [(n, False) for n in DATA["TestValidateReferenceName"]["invalid"]]
    + [(n, True) for n in DATA["TestValidateRemoteName"]["valid"]]
    + [(n, False) for n in DATA["TestValidateRemoteName"]["invalid"]],
)
def test_validate_names(name: str, valid: bool) -> None:
    """TestValidateReferenceName and TestValidateRemoteName (ParseNormalizedNamed)."""
    if valid:
        ref.parse_normalized(name)
        assert ref.is_valid(name)
    else:
        with pytest.raises(ReferenceError_):
            ref.parse_normalized(name)
        assert not ref.is_valid(name)


def _repository_info_cases() -> list[tuple[dict[str, str], str]]:
    cases = []
    for row in DATA["TestParseRepositoryInfo"]:
        for text in (row["FamiliarName"], row["FullName"], row["AmbiguousName"]):
            if text:
                cases.append((row, text))
    return cases


@pytest.mark.parametrize(("row", "text"), _repository_info_cases(), ids=lambda v: str(v)[:50])
def test_parse_repository_info(row: dict[str, str], text: str) -> None:
    named = ref.parse_normalized(text)
    assert named.familiar == row["FamiliarName"]
    assert str(named) == row["FullName"]
    assert named.registry == row["Domain"]
    assert named.path == row["RemoteName"]


def test_parse_reference_with_tag_and_digest() -> None:
    case = DATA["TestParseReferenceWithTagAndDigest"]
    named = ref.parse_normalized(case["input"])
    assert str(named) == case["full"]
    assert named.tag and named.digest
    assert named.familiar == case["familiar"]
    # Docker's handling (ParseDockerRef), which parse() follows, keeps the digest only.
    assert str(ref.parse(case["input"])) == case["full"].replace(":latest@", "@")


def test_invalid_reference_components() -> None:
    case = DATA["TestInvalidReferenceComponents"]
    assert case["invalid_names"] and case["invalid_tags"]
    for name in case["invalid_names"]:
        with pytest.raises(ReferenceError_):
            ref.parse_normalized(name)
    busybox = ref.parse("busybox")
    for tag in case["invalid_tags"]:
        with pytest.raises(ReferenceError_, match="invalid tag"):
            busybox.with_tag(tag)


@pytest.mark.parametrize("row", DATA["TestParseAnyReference"], ids=_ids("Reference"))
def test_parse_any_reference(row: dict[str, Any]) -> None:
    found = ref.parse_any(row["Reference"])
    assert str(found) == row["Equivalent"]
    if "Expected" in row:  # an image ID or a digest, not a name
        assert found == row["Expected"]["value"]
    else:
        assert isinstance(found, ref.Reference)
        expected = ref.split(row["Equivalent"])
        found_parts = (found.registry, found.path, found.tag, found.digest)
        assert found_parts == (expected.domain, expected.path, expected.tag, expected.digest)


@pytest.mark.parametrize("row", DATA["TestNormalizedSplitHostname"], ids=_ids("input"))
def test_normalized_split_hostname(row: dict[str, Any]) -> None:
    named = ref.parse_normalized(row["input"])
    assert (named.registry, named.path) == (row["domain"], row["path"])


@pytest.mark.parametrize("row", DATA["TestParseDockerRef"], ids=_ids("name"))
def test_parse_docker_ref(row: dict[str, Any]) -> None:
    found = ref.parse(row["input"])
    assert str(found) == row["expected"]
    ref.split(str(found))


@pytest.mark.parametrize("row", DATA["TestDomainRegexp"], ids=_ids("input"))
def test_domain_regexp(row: dict[str, Any]) -> None:
    assert (ref.DOMAIN_RE.fullmatch(row["input"]) is not None) is row["match"]


@pytest.mark.parametrize("row", DATA["TestFullNameRegexp"], ids=_ids("input"))
def test_full_name_regexp(row: dict[str, Any]) -> None:
    found = ref.NAME_RE.fullmatch(row["input"])
    assert (found is not None) is row["match"]
    if found is not None and "subs" in row:
        assert [found.group(1) or "", found.group(2)] == row["subs"]


@pytest.mark.parametrize("row", DATA["TestReferenceRegexp"], ids=_ids("input"))
def test_reference_regexp(row: dict[str, Any]) -> None:
    found = ref.REFERENCE_RE.fullmatch(row["input"])
    assert (found is not None) is row["match"]
    if found is not None:
        assert [g or "" for g in found.groups()] == row["subs"]


@pytest.mark.parametrize("row", DATA["TestIdentifierRegexp"], ids=_ids("input"))
def test_identifier_regexp(row: dict[str, Any]) -> None:
    assert (ref.IDENTIFIER_RE.fullmatch(row["input"]) is not None) is row["match"]
