"""``rmi`` of an image a container uses, as docker's daemon decides it.

The cases follow moby's ``daemon/images/image_delete.go`` (``ImageDelete``,
``isSingleReference``, ``checkImageDeleteConflict``): by name, the image's only name is
not removed while a container (running or stopped) uses the image unless forced, and a
forced untag keeps the image (unnamed) for the container; another name of the image may
go at any time. By id, a running container's image is refused even when forced, a
stopped container's unless forced. A refusal changes nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from envkit.cli import main
from envkit.errors import StoreError
from envkit.store.gc import ImageUser
from envkit.store.store import Store
from tests.unit.store_helpers import make_image


@pytest.fixture
def store(envkit_home: Path) -> Store:
    return Store.default()


def _user(store: Store, ref: str, running: bool = True) -> ImageUser:
    _, manifest = store.image_manifest(store.resolve(ref))
    return ImageUser(manifest.config.digest, "c0ffee" * 10 + "abcd", "web", running)


@pytest.mark.parametrize("running", [True, False])
def test_the_only_name_of_a_used_image_is_refused(store: Store, running: bool) -> None:
    desc = make_image(store, "app:1")
    user = _user(store, "app:1", running)
    with pytest.raises(StoreError) as caught:
        store.remove("app:1", users=[user])
    message = str(caught.value)
    assert message.startswith(
        'conflict: unable to remove repository reference "app:1" (must force) - '
    )
    assert "container c0ffeec0ffee (web) is using its referenced image" in message
    assert "envkit rm -f web" in str(caught.value.hint)
    assert store.resolve("app:1") == desc  # nothing changed


def test_forced_untag_keeps_the_image_for_its_container(store: Store) -> None:
    desc = make_image(store, "app:1")
    blobs = sorted(store.blobs())
    report = store.remove("app:1", force=True, users=[_user(store, "app:1")])
    assert report.untagged == ["docker.io/library/app:1"] and report.deleted == []
    assert store.refs() == {}
    assert sorted(store.blobs()) == blobs
    assert store.resolve(desc.digest) == desc  # kept unnamed, as docker's <none>
    store.prune()
    assert sorted(store.blobs()) == blobs


def test_another_name_of_a_used_image_may_go(store: Store) -> None:
    make_image(store, "app:1")
    store.tag("app:2", store.resolve("app:1"))
    report = store.remove("app:2", users=[_user(store, "app:1")])
    assert report.untagged == ["docker.io/library/app:2"] and report.deleted == []


def test_by_id_a_running_containers_image_cannot_be_forced(store: Store) -> None:
    desc = make_image(store, "app:1")
    user = _user(store, "app:1", running=True)
    for force in (False, True):
        with pytest.raises(StoreError, match=r"\(cannot be forced\) - image is being used by "):
            store.remove(desc.digest, force=force, users=[user])
    assert store.resolve("app:1") == desc


def test_by_id_a_stopped_containers_image_must_be_forced(store: Store) -> None:
    desc = make_image(store, "app:1")
    user = _user(store, "app:1", running=False)
    with pytest.raises(StoreError, match=r"\(must be forced\) - .* stopped container"):
        store.remove(desc.digest, users=[user])
    report = store.remove(desc.digest, force=True, users=[user])
    assert report.untagged == ["docker.io/library/app:1"] and report.deleted == []
    assert store.resolve(desc.digest) == desc


def test_an_unused_image_goes_as_before(store: Store) -> None:
    desc = make_image(store, "app:1")
    other = make_image(store, "other:1", files={"x": b"y"})
    report = store.remove("app:1", users=[_user(store, "other:1")])
    assert desc.digest in report.deleted
    assert store.resolve("other:1") == other


def test_cli_rmi_of_a_used_image_exits_2_naming_the_container(
    store: Store, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_image(store, "app:1")
    user = _user(store, "app:1")
    monkeypatch.setattr("envkit.cli.images._image_users", lambda: [user])
    assert main(["rmi", "app:1"]) == 2
    err = capsys.readouterr().err
    assert "container c0ffeec0ffee (web) is using its referenced image" in err
    assert "Traceback" not in err
    assert main(["rmi", "-f", "app:1"]) == 0
    assert capsys.readouterr().out == "Untagged: app:1\n"
