"""Docker's ``--pull`` policies of ``run`` and ``up`` (envkit.pulling), with the registry
replaced by a recording fake: what is pulled, when, and what is said."""

from __future__ import annotations

import importlib
import io
from pathlib import Path

import pytest

from envkit import pulling
from envkit.errors import ImageNotFoundError, RegistryError, SpecError
from envkit.oci.reference import parse
from envkit.oci.types import Descriptor
from envkit.registry.progress import Progress
from envkit.registry.pull import PulledImage
from envkit.stack import api
from envkit.store.store import Store
from tests.unit.store_helpers import make_image

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("127.0.0.1:5000/app:1", "127.0.0.1:5000/app:1"),
        (f"me/app@{DIGEST}", f"docker.io/me/app@{DIGEST}"),
        (DIGEST, None),  # a digest names no repository
        ("ab" * 32, None),  # an image id
        ("Not A Ref", None),
    ],
)
def test_what_is_pulled_for_a_name(ref: str, expected: str | None) -> None:
    assert pulling.remote(ref) == expected


def test_policies_are_checked() -> None:
    assert [pulling.check(p) for p in pulling.POLICIES] == ["missing", "always", "never"]
    with pytest.raises(SpecError, match="pull: expected missing, always or never"):
        pulling.check("sometimes")


class FakeRegistry:
    """Stands in for ``envkit.registry.pull.pull``: records refs, tags a test image."""

    def __init__(self, store: Store, fail: str = "") -> None:
        self.store = store
        self.fail = fail
        self.pulled: list[str] = []

    def __call__(
        self,
        ref: str,
        store: Store | None = None,
        *,
        progress: Progress | None = None,
        **kw: object,
    ) -> PulledImage:
        self.pulled.append(ref)
        if self.fail:
            raise RegistryError(self.fail, hint="check that the registry is running")
        desc = make_image(self.store, ref)
        if progress is not None:
            progress.message(f"1: Pulling from {parse(ref).path}")
        return PulledImage(parse(ref), desc, desc, parse(ref).registry, 1)


@pytest.fixture
def store(envkit_home: Path) -> Store:
    return Store.default()


@pytest.fixture
def registry(store: Store, monkeypatch: pytest.MonkeyPatch) -> FakeRegistry:
    fake = FakeRegistry(store)
    # The module (the package's `pull` attribute is the function of the same name).
    monkeypatch.setattr(importlib.import_module("envkit.registry.pull"), "pull", fake)
    return fake


def test_a_missing_image_is_pulled_with_dockers_lines(registry: FakeRegistry) -> None:
    out = io.StringIO()
    image = pulling.pull("reg.test:5000/app:1", missing=True, stream=out)
    assert registry.pulled == ["reg.test:5000/app:1"]
    assert out.getvalue().splitlines() == [
        "Unable to find image 'reg.test:5000/app:1' locally",
        "1: Pulling from app",
        "Status: Downloaded newer image for reg.test:5000/app:1",
    ]
    assert isinstance(image.descriptor, Descriptor)


def test_a_failed_pull_is_one_error(registry: FakeRegistry) -> None:
    registry.fail = "reg.test:5000: cannot connect (refused after 4 attempts)"
    with pytest.raises(ImageNotFoundError) as missing:
        pulling.pull("reg.test:5000/app:1", missing=True)
    assert str(missing.value).startswith(
        "no image 'reg.test:5000/app:1' in the store, and pulling it failed: reg.test:5000: "
    )
    assert missing.value.exit_code == 2
    with pytest.raises(RegistryError, match=r"cannot pull 'reg.test:5000/app:1' \(--pull=always\)"):
        pulling.pull("reg.test:5000/app:1", missing=False)


def test_stack_pulls_follow_the_policy(store: Store, registry: FakeRegistry) -> None:
    make_image(store, "reg.test/here:1")
    refs = {"a": "reg.test/here:1", "b": "reg.test/gone:1", "c": "reg.test/gone:1"}
    said: list[str] = []
    api.pull_images(refs, "missing", report=said.append)
    assert registry.pulled == ["reg.test/gone:1"]  # once, and not the stored one
    assert said[0] == "b: pulling reg.test/gone:1 (not in the store)"
    assert said[1].startswith("b: pulled reg.test/gone:1 (sha256:")
    api.pull_images(refs, "missing")
    assert registry.pulled == ["reg.test/gone:1"]  # now in the store
    api.pull_images(refs, "always")
    assert registry.pulled[1:] == ["reg.test/here:1", "reg.test/gone:1"]


def test_stack_never_names_the_service(store: Store, registry: FakeRegistry) -> None:
    with pytest.raises(ImageNotFoundError) as exc:
        api.pull_images({"db": "reg.test/db:1"}, "never")
    assert str(exc.value).startswith("Service('db').image: no image 'reg.test/db:1' in the store")
    assert "envkit pull reg.test/db:1" in str(exc.value)
    assert registry.pulled == []
    registry.fail = "reg.test: not found"
    with pytest.raises(ImageNotFoundError, match=r"^Service\('db'\)\.image: no image"):
        api.pull_images({"db": "reg.test/db:1"}, "missing")
    with pytest.raises(SpecError):
        api.pull_images({}, "sometimes")
